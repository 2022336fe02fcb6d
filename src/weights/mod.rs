//! From a published checkpoint to the tensors modules are built from, in one pass downwards:
//!
//! 1. [`WeightsReader`] reads the container (PyTorch zip or safetensors) as a stream of chunks
//!    into a [`Checkpoint`]: names, shapes and each tensor's values, converted to `f32` as they
//!    arrive (the file is never held whole);
//! 2. [`names`] renames every tensor to one canonical naming (timm / open_clip);
//! 3. [`fold`] folds the train-time branches, BatchNorms and layer scales of each block into
//!    its inference tensors, giving [`FusedWeights`] (each checkpoint tensor released as it is
//!    taken);
//! 4. `model/` builds burn modules from the fused map through a scoped [`VarBuilder`]
//!    (`vb.pp("stages").pp(0)`), never seeing a train-time name; [`VarBuilder::finish`] reports
//!    every missing, mis-shaped or unexpected tensor in one `WEIGHTS_MISMATCH` error.
//!
//! [`fuse_checkpoint`] runs steps 1–3. A [`compact`] model file is the fused map written to
//! disk (optionally at lower precision, see [`quantize`]): reading one skips steps 2 and 3.

mod checkpoint;
pub mod compact;
mod crc32;
pub mod fold;
mod fused;
pub mod names;
mod pickle;
mod problems;
pub mod quantize;
mod stream;
mod var_builder;

pub use checkpoint::{Checkpoint, Format};
pub use compact::{CompactInfo, ConvertOptions, Towers};
pub use fused::{FusedTensor, FusedWeights, HostTensor, Storage};
pub use quantize::{Precision, Tolerance};
pub use stream::WeightsReader;
pub use var_builder::VarBuilder;

use problems::Problems;

use crate::config::{Architecture, Family, ModelConfig};
use crate::error::{Error, Result};

/// `config` as the model is described in the layout `ckpt`'s tensor names are in
/// ([`names::detect_family`]): itself, or for a v1 model in open_clip's layout
/// (`apple/MobileCLIP-*-OpenCLIP`) its open_clip description ([`ModelConfig::in_layout`]).
/// A layout the model is not published in is a `WEIGHTS_MISMATCH`.
pub fn config_for_checkpoint(ckpt: &Checkpoint, config: &ModelConfig) -> Result<ModelConfig> {
    match names::detect_family(ckpt) {
        Some(found) if found != config.family => config.in_layout(found).ok_or_else(|| layout_mismatch(found, config)),
        _ => Ok(config.clone()),
    }
}

/// A published checkpoint of `config`'s model as the model is built from it: the description of
/// the layout it is in ([`config_for_checkpoint`]), its architecture, and its fused tensors. The
/// one path from a checkpoint to fused tensors (loading and `convert` both take it).
pub fn fuse_published(ckpt: Checkpoint, config: &ModelConfig) -> Result<(ModelConfig, Architecture, FusedWeights)> {
    let config = config_for_checkpoint(&ckpt, config)?;
    let arch = config.resolve()?;
    let fused = fuse_checkpoint(ckpt, &config, &arch)?;
    Ok((config, arch, fused))
}

/// Renames and folds a checkpoint in `config`'s layout (see [`config_for_checkpoint`]) into its
/// fused inference tensors. A checkpoint in another layout is refused here; whether the tensors
/// fit the model is known once the model is built from them.
pub fn fuse_checkpoint(mut ckpt: Checkpoint, config: &ModelConfig, arch: &Architecture) -> Result<FusedWeights> {
    if let Some(found) = names::detect_family(&ckpt)
        && found != config.family
    {
        return Err(layout_mismatch(found, config));
    }
    names::canonicalize(&mut ckpt, config.family, arch);
    Ok(fold::fold(ckpt))
}

fn layout_mismatch(found: Family, config: &ModelConfig) -> Error {
    let layout = |f: Family| match f {
        Family::Mobileclip => "Apple's MobileCLIP v1 layout (`image_encoder.*`, `text_encoder.*`)",
        Family::OpenClip => "open_clip's layout (`visual.*`, `text.*`)",
    };
    Error::WeightsMismatch(format!(
        "the checkpoint is in {}, but {} expects {}: is this the weights file of another model?",
        layout(found),
        config.name,
        layout(config.family)
    ))
}
