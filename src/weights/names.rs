//! Maps the tensor names of published checkpoints onto one canonical naming, so that each
//! module has one loader.
//!
//! Canonical names:
//! - image tower under `visual.`, named as timm's `FastVit` names its parameters (`stem.0.conv_kxk.0.conv.weight`,
//!   `stages.3.pos_emb.pos_enc.weight`, `final_conv.se.fc1.weight`, `head.fc.weight`); Apple's v1
//!   names are remapped the way timm's `checkpoint_filter_fn` remaps them;
//! - text tower under `text.`, named as open_clip's `TextTransformer` (`token_embedding.weight`,
//!   `transformer.resblocks.0.attn.in_proj_weight`, `ln_final.weight`, `text_projection`); the
//!   RepMixer blocks of v1's "mct" text encoder keep timm-style sub-names under
//!   `transformer.resblocks.{i}`;
//! - `logit_scale`.

use super::Checkpoint;
use crate::config::Family;

/// Renames every tensor of `ckpt` to its canonical name; tensors outside the model (other keys
/// saved beside it) keep their names and are ignored by loading.
pub fn canonicalize(ckpt: &mut Checkpoint, family: Family) {
    match family {
        Family::Mobileclip => {
            let stage_ends = v1_stage_ends(ckpt);
            ckpt.rename(|n| Some(v1_name(n, &stage_ends)));
        }
        Family::OpenClip => ckpt.rename(|n| Some(open_clip_name(n))),
    }
}

/// Indices of `network.N` entries that are PatchEmbed downsamplers (v1 FastViT).
fn v1_stage_ends(ckpt: &Checkpoint) -> Vec<usize> {
    let mut ends: Vec<usize> = ckpt
        .names()
        .filter_map(|n| n.strip_prefix("image_encoder.model.network."))
        .filter_map(|rest| {
            let (idx, tail) = rest.split_once('.')?;
            tail.starts_with("proj.")
                .then(|| idx.parse().ok())
                .flatten()
        })
        .collect();
    ends.sort_unstable();
    ends.dedup();
    ends
}

/// Apple's sub-module names → timm's, for MobileOne/RepMixer/ConvFFN/SE/layer-scale parameters.
fn v1_block_names(k: &str) -> String {
    let mut k = k
        .replace("rbr_conv", "conv_kxk")
        .replace("rbr_scale", "conv_scale")
        .replace("rbr_skip", "identity")
        .replace("lkb_origin", "large_conv")
        .replace("lkb_reparam", "reparam_conv")
        .replace("convffn", "mlp")
        .replace("se.reduce", "se.fc1")
        .replace("se.expand", "se.fc2")
        .replace("layer_scale_1", "layer_scale_1.gamma")
        .replace("layer_scale_2", "layer_scale_2.gamma");
    if k.ends_with("layer_scale") {
        k.push_str(".gamma");
    }
    k
}

fn v1_name(name: &str, stage_ends: &[usize]) -> String {
    if let Some(rest) = name.strip_prefix("image_encoder.model.") {
        let rest = v1_block_names(rest)
            .replace("patch_embed", "stem")
            .replace("conv_exp", "final_conv");
        if let Some(net) = rest.strip_prefix("network.") {
            let (idx, tail) = net.split_once('.').unwrap_or((net, ""));
            if let Ok(idx) = idx.parse::<usize>() {
                let stage = stage_ends.partition_point(|&e| e <= idx);
                return if let Some(t) = tail.strip_prefix("proj.") {
                    format!("visual.stages.{stage}.downsample.proj.{t}")
                } else if let Some(t) = tail.strip_prefix("pe.") {
                    format!("visual.stages.{stage}.pos_emb.pos_enc.{t}")
                } else if let Some(t) = tail.strip_prefix("reparam_conv.") {
                    format!("visual.stages.{stage}.pos_emb.reparam_conv.{t}")
                } else {
                    format!("visual.stages.{stage}.blocks.{tail}")
                };
            }
        }
        return format!("visual.{rest}");
    }
    if let Some(rest) = name.strip_prefix("text_encoder.") {
        let mapped = match rest {
            "embedding_layer.weight" => "token_embedding.weight".to_string(),
            "positional_embedding.pos_embed.pos_embed" => "positional_embedding".to_string(),
            "projection_layer" => "text_projection".to_string(),
            _ => {
                if let Some(t) = rest.strip_prefix("final_layer_norm.") {
                    format!("ln_final.{t}")
                } else if let Some(t) = rest.strip_prefix("transformer.") {
                    let (idx, tail) = t.split_once('.').unwrap_or((t, ""));
                    let tail = match tail {
                        t if t.starts_with("pre_norm_mha.0.") => {
                            t.replace("pre_norm_mha.0.", "ln_1.")
                        }
                        "pre_norm_mha.1.qkv_proj.weight" => "attn.in_proj_weight".into(),
                        "pre_norm_mha.1.qkv_proj.bias" => "attn.in_proj_bias".into(),
                        t if t.starts_with("pre_norm_mha.1.out_proj.") => {
                            t.replace("pre_norm_mha.1.", "attn.")
                        }
                        t if t.starts_with("pre_norm_ffn.0.") => {
                            t.replace("pre_norm_ffn.0.", "ln_2.")
                        }
                        t if t.starts_with("pre_norm_ffn.1.") => {
                            t.replace("pre_norm_ffn.1.", "mlp.c_fc.")
                        }
                        t if t.starts_with("pre_norm_ffn.4.") => {
                            t.replace("pre_norm_ffn.4.", "mlp.c_proj.")
                        }
                        t => v1_block_names(t),
                    };
                    format!("transformer.resblocks.{idx}.{tail}")
                } else {
                    rest.to_string()
                }
            }
        };
        return format!("text.{mapped}");
    }
    name.to_string()
}

fn open_clip_name(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("visual.trunk.") {
        return format!("visual.{rest}");
    }
    // Non-custom-text CLIP keeps the text tower at the top level.
    for top in [
        "token_embedding.",
        "positional_embedding",
        "transformer.",
        "ln_final.",
        "text_projection",
    ] {
        if name.starts_with(top) {
            return format!("text.{name}");
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_image_names_follow_timm() {
        let ends = [1, 3, 5];
        let n = |s: &str| v1_name(s, &ends);
        assert_eq!(
            n("image_encoder.model.patch_embed.0.rbr_conv.0.conv.weight"),
            "visual.stem.0.conv_kxk.0.conv.weight"
        );
        assert_eq!(
            n("image_encoder.model.network.0.1.token_mixer.mixer.rbr_skip.running_var"),
            "visual.stages.0.blocks.1.token_mixer.mixer.identity.running_var"
        );
        assert_eq!(
            n("image_encoder.model.network.1.proj.0.lkb_origin.bn.weight"),
            "visual.stages.1.downsample.proj.0.large_conv.bn.weight"
        );
        assert_eq!(
            n("image_encoder.model.network.6.pe.weight"),
            "visual.stages.3.pos_emb.pos_enc.weight"
        );
        assert_eq!(
            n("image_encoder.model.network.6.reparam_conv.bias"),
            "visual.stages.3.pos_emb.reparam_conv.bias"
        );
        assert_eq!(
            n("image_encoder.model.network.7.0.layer_scale_1"),
            "visual.stages.3.blocks.0.layer_scale_1.gamma"
        );
        assert_eq!(
            n("image_encoder.model.network.4.2.layer_scale"),
            "visual.stages.2.blocks.2.layer_scale.gamma"
        );
        assert_eq!(
            n("image_encoder.model.network.4.2.token_mixer.layer_scale"),
            "visual.stages.2.blocks.2.token_mixer.layer_scale.gamma"
        );
        assert_eq!(
            n("image_encoder.model.conv_exp.se.reduce.weight"),
            "visual.final_conv.se.fc1.weight"
        );
        assert_eq!(n("image_encoder.model.head.proj"), "visual.head.proj");
    }

    #[test]
    fn v1_text_names_follow_open_clip() {
        let n = |s: &str| v1_name(s, &[]);
        assert_eq!(
            n("text_encoder.transformer.1.pre_norm_mha.1.qkv_proj.weight"),
            "text.transformer.resblocks.1.attn.in_proj_weight"
        );
        assert_eq!(
            n("text_encoder.transformer.3.pre_norm_ffn.4.bias"),
            "text.transformer.resblocks.3.mlp.c_proj.bias"
        );
        assert_eq!(
            n("text_encoder.transformer.0.token_mixer.mixer.rbr_conv.0.bn.weight"),
            "text.transformer.resblocks.0.token_mixer.mixer.conv_kxk.0.bn.weight"
        );
        assert_eq!(
            n("text_encoder.transformer.0.convffn.fc1.weight"),
            "text.transformer.resblocks.0.mlp.fc1.weight"
        );
        assert_eq!(
            n("text_encoder.positional_embedding.pos_embed.pos_embed"),
            "text.positional_embedding"
        );
        assert_eq!(n("logit_scale"), "logit_scale");
    }

    #[test]
    fn open_clip_names() {
        assert_eq!(
            open_clip_name("visual.trunk.stages.0.blocks.0.mlp.fc1.weight"),
            "visual.stages.0.blocks.0.mlp.fc1.weight"
        );
        assert_eq!(
            open_clip_name("token_embedding.weight"),
            "text.token_embedding.weight"
        );
        assert_eq!(
            open_clip_name("text.ln_final.weight"),
            "text.ln_final.weight"
        );
    }
}
