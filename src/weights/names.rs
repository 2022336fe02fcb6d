//! Maps the tensor names of published checkpoints onto one canonical naming, so that one set of
//! folding rules ([`super::fold`]) and one model serve every published layout.
//!
//! Canonical names:
//! - image tower under `visual.`, named as timm's `FastVit` / `VisionTransformer` name their
//!   parameters (`stem.0.conv_kxk.0.conv.weight`, `stages.3.pos_emb.pos_enc.weight`,
//!   `final_conv.se.fc1.weight`, `head.fc.weight`); Apple's v1 names are remapped the way
//!   timm's `checkpoint_filter_fn` remaps them;
//! - text tower under `text.`, named as open_clip's `TextTransformer` (`token_embedding.weight`,
//!   `transformer.resblocks.0.attn.in_proj_weight`, `ln_final.weight`, `text_projection`; ViT
//!   blocks take the same sub-names under `visual.blocks.N`); the RepMixer blocks of v1's "mct"
//!   text encoder keep timm-style sub-names under `transformer.resblocks.{i}`;
//! - `logit_scale`.

use super::Checkpoint;
use crate::config::{Architecture, Family, FastVitArch, ImageArch};

/// Renames every tensor of `ckpt` to its canonical name; tensors outside the model (other keys
/// saved beside it) keep their names, and loading reports them as unexpected.
pub fn canonicalize(ckpt: &mut Checkpoint, family: Family, arch: &Architecture) {
    match family {
        Family::Mobileclip => {
            let network = match &arch.image {
                ImageArch::FastVit(a) => v1_network_layout(a),
                ImageArch::Vit(_) => Vec::new(),
            };
            ckpt.rename(|n| Some(v1_name(n, &network)));
        }
        Family::OpenClip => ckpt.rename(|n| Some(open_clip_name(n))),
    }
}

/// The layout family a checkpoint's names belong to, if recognisable.
pub fn detect_family(ckpt: &Checkpoint) -> Option<Family> {
    let mut names = ckpt.names();
    names.find_map(|n| {
        if n.starts_with("image_encoder.") || n.starts_with("text_encoder.") {
            Some(Family::Mobileclip)
        } else if n.starts_with("visual.") || n.starts_with("text.") || n.starts_with("token_embedding.") {
            Some(Family::OpenClip)
        } else {
            None
        }
    })
}

/// What each entry `network.N` of Apple's v1 FastViT holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NetworkPart {
    /// The PatchEmbed that starts stage `s`.
    Downsample(usize),
    /// The RepCPE of stage `s`.
    PosEmb(usize),
    /// The blocks of stage `s`.
    Blocks(usize),
}

/// Apple's v1 `FastViT.network` is flat: `[pos_emb?, stage, patch_embed?]` per stage. Its
/// layout follows from the architecture (timm's `checkpoint_filter_fn` guesses it from the
/// PatchEmbed positions instead, which merges stages not separated by a downsampler).
fn v1_network_layout(arch: &FastVitArch) -> Vec<NetworkPart> {
    let mut parts = Vec::new();
    for s in 0..arch.layers.len() {
        if arch.has_downsample(s) {
            parts.push(NetworkPart::Downsample(s));
        }
        if arch.pos_embs[s] {
            parts.push(NetworkPart::PosEmb(s));
        }
        parts.push(NetworkPart::Blocks(s));
    }
    parts
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

/// A pre-norm transformer block's sub-names (Apple's `TransformerEncoder` in both v1 towers,
/// timm's `Block` in MobileCLIP2's ViTs) → open_clip's `ResidualAttentionBlock` names, the
/// canonical ones. The first match of a prefix wins.
fn block_names(tail: &str) -> Option<String> {
    const MAP: &[(&str, &str)] = &[
        // Apple's TransformerEncoder
        ("pre_norm_mha.0.", "ln_1."),
        ("pre_norm_mha.1.qkv_proj.weight", "attn.in_proj_weight"),
        ("pre_norm_mha.1.qkv_proj.bias", "attn.in_proj_bias"),
        ("pre_norm_mha.1.out_proj.", "attn.out_proj."),
        ("pre_norm_ffn.0.", "ln_2."),
        ("pre_norm_ffn.1.", "mlp.c_fc."),
        ("pre_norm_ffn.4.", "mlp.c_proj."),
        // timm's Block
        ("norm1.", "ln_1."),
        ("attn.qkv.weight", "attn.in_proj_weight"),
        ("attn.qkv.bias", "attn.in_proj_bias"),
        ("attn.proj.", "attn.out_proj."),
        ("norm2.", "ln_2."),
        ("mlp.fc1.", "mlp.c_fc."),
        ("mlp.fc2.", "mlp.c_proj."),
    ];
    MAP.iter().find(|(from, _)| tail.starts_with(from)).map(|(from, to)| format!("{to}{}", &tail[from.len()..]))
}

/// Apple's v1 ViT (`vit.py`) names → canonical (timm `VisionTransformer` layout).
fn v1_vit_name(rest: &str) -> Option<String> {
    let mapped = if let Some(t) = rest.strip_prefix("patch_emb.") {
        let (idx, tail) = t.split_once('.')?;
        let tail = tail.strip_prefix("block.")?.replace("norm.", "bn.");
        format!("patch_embed.backbone.{idx}.{tail}")
    } else if let Some(t) = rest.strip_prefix("transformer.") {
        let (idx, tail) = t.split_once('.')?;
        format!("blocks.{idx}.{}", block_names(tail)?)
    } else if rest == "pos_embed.pos_embed.pos_embed" {
        "pos_embed".into()
    } else if let Some(t) = rest.strip_prefix("post_transformer_norm.") {
        format!("norm.{t}")
    } else if rest == "classifier.proj" {
        "head.proj".into()
    } else if rest == "cls_token" {
        rest.into()
    } else {
        return None;
    };
    Some(format!("visual.{mapped}"))
}

fn v1_name(name: &str, network: &[NetworkPart]) -> String {
    if let Some(rest) = name.strip_prefix("image_encoder.model.") {
        if let Some(vit) = v1_vit_name(rest) {
            return vit;
        }
        let rest = v1_block_names(rest).replace("patch_embed", "stem").replace("conv_exp", "final_conv");
        if let Some(net) = rest.strip_prefix("network.") {
            let (idx, tail) = net.split_once('.').unwrap_or((net, ""));
            if let Some(part) = idx.parse::<usize>().ok().and_then(|i| network.get(i)) {
                return match *part {
                    NetworkPart::Downsample(s) => format!("visual.stages.{s}.downsample.{tail}"),
                    NetworkPart::PosEmb(s) => {
                        let tail = tail.strip_prefix("pe.").map_or(tail.to_string(), |t| format!("pos_enc.{t}"));
                        format!("visual.stages.{s}.pos_emb.{tail}")
                    }
                    NetworkPart::Blocks(s) => format!("visual.stages.{s}.blocks.{tail}"),
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
                    // Transformer layers (`pre_norm_*`) or, in "mct", RepMixer blocks.
                    let (idx, tail) = t.split_once('.').unwrap_or((t, ""));
                    let tail = block_names(tail).unwrap_or_else(|| v1_block_names(tail));
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
        // timm ViT blocks (top-level `blocks.N`); FastViT's live under `stages.N.blocks`.
        if let Some(t) = rest.strip_prefix("blocks.")
            && let Some((idx, tail)) = t.split_once('.')
            && let Some(mapped) = block_names(tail)
        {
            return format!("visual.blocks.{idx}.{mapped}");
        }
        return format!("visual.{rest}");
    }
    // Non-custom-text CLIP keeps the text tower at the top level.
    for top in ["token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection"] {
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
        let layout = v1_network_layout(&FastVitArch::named("mci0").unwrap());
        let n = |s: &str| v1_name(s, &layout);
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
        assert_eq!(n("image_encoder.model.network.6.pe.weight"), "visual.stages.3.pos_emb.pos_enc.weight");
        assert_eq!(n("image_encoder.model.network.6.reparam_conv.bias"), "visual.stages.3.pos_emb.reparam_conv.bias");
        assert_eq!(n("image_encoder.model.network.7.0.layer_scale_1"), "visual.stages.3.blocks.0.layer_scale_1.gamma");
        assert_eq!(n("image_encoder.model.network.4.2.layer_scale"), "visual.stages.2.blocks.2.layer_scale.gamma");
        assert_eq!(
            n("image_encoder.model.network.4.2.token_mixer.layer_scale"),
            "visual.stages.2.blocks.2.token_mixer.layer_scale.gamma"
        );
        assert_eq!(n("image_encoder.model.conv_exp.se.reduce.weight"), "visual.final_conv.se.fc1.weight");
        assert_eq!(n("image_encoder.model.head.proj"), "visual.head.proj");
    }

    #[test]
    fn v1_text_names_follow_open_clip() {
        let n = |s: &str| v1_name(s, &[]);
        assert_eq!(
            n("text_encoder.transformer.1.pre_norm_mha.1.qkv_proj.weight"),
            "text.transformer.resblocks.1.attn.in_proj_weight"
        );
        assert_eq!(n("text_encoder.transformer.3.pre_norm_ffn.4.bias"), "text.transformer.resblocks.3.mlp.c_proj.bias");
        assert_eq!(
            n("text_encoder.transformer.0.token_mixer.mixer.rbr_conv.0.bn.weight"),
            "text.transformer.resblocks.0.token_mixer.mixer.conv_kxk.0.bn.weight"
        );
        assert_eq!(n("text_encoder.transformer.0.convffn.fc1.weight"), "text.transformer.resblocks.0.mlp.fc1.weight");
        assert_eq!(n("text_encoder.positional_embedding.pos_embed.pos_embed"), "text.positional_embedding");
        assert_eq!(n("logit_scale"), "logit_scale");
    }

    #[test]
    fn v1_layout_keeps_stages_without_downsampler_apart() {
        let mut arch = FastVitArch::named("mci0").unwrap();
        arch.layers = vec![1, 1, 1];
        arch.embed_dims = vec![16, 32, 32];
        arch.downsamples = vec![false, true, false];
        arch.pos_embs = vec![false, true, false];
        use NetworkPart::*;
        assert_eq!(v1_network_layout(&arch), vec![Blocks(0), Downsample(1), PosEmb(1), Blocks(1), Blocks(2)]);
    }

    #[test]
    fn vit_names() {
        let n = |s: &str| v1_name(s, &[]);
        assert_eq!(n("image_encoder.model.patch_emb.0.block.conv.weight"), "visual.patch_embed.backbone.0.conv.weight");
        assert_eq!(
            n("image_encoder.model.patch_emb.1.block.norm.running_mean"),
            "visual.patch_embed.backbone.1.bn.running_mean"
        );
        assert_eq!(n("image_encoder.model.transformer.11.pre_norm_ffn.1.weight"), "visual.blocks.11.mlp.c_fc.weight");
        assert_eq!(n("image_encoder.model.pos_embed.pos_embed.pos_embed"), "visual.pos_embed");
        assert_eq!(n("image_encoder.model.classifier.proj"), "visual.head.proj");
        assert_eq!(open_clip_name("visual.trunk.blocks.3.attn.qkv.bias"), "visual.blocks.3.attn.in_proj_bias");
        assert_eq!(open_clip_name("visual.trunk.blocks.3.norm1.weight"), "visual.blocks.3.ln_1.weight");
        assert_eq!(
            open_clip_name("visual.trunk.patch_embed.backbone.0.bn.weight"),
            "visual.patch_embed.backbone.0.bn.weight"
        );
    }

    #[test]
    fn open_clip_names() {
        assert_eq!(
            open_clip_name("visual.trunk.stages.0.blocks.0.mlp.fc1.weight"),
            "visual.stages.0.blocks.0.mlp.fc1.weight"
        );
        assert_eq!(open_clip_name("token_embedding.weight"), "text.token_embedding.weight");
        assert_eq!(open_clip_name("text.ln_final.weight"), "text.ln_final.weight");
    }
}
