//! The arithmetic a model computes in: [`ComputePrecision`], chosen at load (with the device, as
//! a [`Placement`]), and what each tower of the loaded model runs in, [`TowerPrecision`].
//!
//! Not to be confused with [`crate::weights::Precision`], the *storage* of a compact file's
//! tensors (f32, f16, integers with scales): whatever a file stores is widened when it is read,
//! and then uploaded in the compute precision of its tower.
//!
//! Half precision is a GPU matter: on a GPU whose adapter offers 16-bit floats in shaders
//! (WebGPU's `shader-f16`), a tower can hold its parameters and activations as `f16` and compute
//! with them, halving memory traffic ([`TowerPrecision::F16`]). Where that rounding costs too
//! much (the convolutional image towers, see [`ComputePrecision::Auto`]), a tower can instead
//! keep `f32` activations and arithmetic and hold only the parameters this crate's fused GPU
//! kernels read in `f16` ([`TowerPrecision::F16Weights`]: the 1×1 convolutions and linear
//! layers, squeeze-excite, the depthwise pairs, LayerNorm; most of the bytes), widened as they
//! are read; the parameters burn's own operations take (the other convolutions, the projection)
//! stay `f32`, so no cast runs per call. Where the feature is missing, and on the CPU backend,
//! every tower computes in `f32`, without an error, whatever was asked for;
//! [`crate::MobileClip::precision`] says what was chosen. Embeddings are returned as `f32`
//! either way.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{DType, Device};

use crate::config::ImageArch;
use crate::error::{Error, Result};

/// The precision asked for at load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ComputePrecision {
    /// Where the device offers `f16`: [`TowerPrecision::F16`] for the towers measured to keep
    /// their embeddings within cosine 0.9999 of `f32` in it (text towers and ViT image towers),
    /// [`TowerPrecision::F16Weights`] for the others (convolutional image towers, which missed
    /// that bar in full `f16` on some architectures: 0.998401 on a small MCi3); `f32` elsewhere.
    #[default]
    Auto,
    /// `f32` everywhere.
    F32,
    /// `f16` for every tower where the device offers it, `f32` elsewhere.
    F16,
}

/// What one tower of a loaded model computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TowerPrecision {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (parameters and activations; this crate's fused GPU kernels sum in `f32`).
    F16,
    /// 32-bit activations and arithmetic, with the parameters this crate's fused GPU kernels
    /// read held as 16-bit floats (the others `f32`): an image tower's weights in about half
    /// the memory, its embeddings within rounding of the weights of `f32`'s (measured on
    /// lavapipe, random-weight full-size models: MobileCLIP-S0's image tower 24.0 MB instead of
    /// 45.4 MB at cosine 0.9999986 to `f32`, MobileCLIP2-S0's the same bytes at 0.9999985). What
    /// `auto` gives a convolutional image tower (never a text tower).
    F16Weights,
}

/// The kinds of towers, as far as their precision goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TowerKind {
    /// A text tower (transformer, with or without RepMixer blocks).
    Text,
    /// A ViT image tower.
    VitImage,
    /// A convolutional image tower (MCi / FastViT).
    ConvImage,
}

impl TowerKind {
    /// The kind of an image tower of architecture `arch`.
    pub fn image(arch: &ImageArch) -> Self {
        match arch {
            ImageArch::FastVit(_) => TowerKind::ConvImage,
            ImageArch::Vit(_) => TowerKind::VitImage,
        }
    }
}

impl ComputePrecision {
    /// What a tower of `kind` computes in on a device that offers `f16` arithmetic (`f16`; see
    /// [`offers_f16`]) or not.
    pub fn resolve(self, kind: TowerKind, f16: bool) -> TowerPrecision {
        match self {
            _ if !f16 => TowerPrecision::F32,
            ComputePrecision::F32 => TowerPrecision::F32,
            ComputePrecision::F16 => TowerPrecision::F16,
            ComputePrecision::Auto if kind == TowerKind::ConvImage => TowerPrecision::F16Weights,
            ComputePrecision::Auto => TowerPrecision::F16,
        }
    }
}

impl TowerPrecision {
    /// The activations' element type, and the parameters' that burn's own operations take.
    pub fn dtype(self) -> DType {
        match self {
            TowerPrecision::F32 | TowerPrecision::F16Weights => DType::F32,
            TowerPrecision::F16 => DType::F16,
        }
    }

    /// The element type of the parameters this crate's fused GPU kernels read (see
    /// [`crate::weights::VarBuilder::fused`]): [`Self::dtype`], but `f16` for [`TowerPrecision::F16Weights`].
    pub fn weights_dtype(self) -> DType {
        match self {
            TowerPrecision::F32 => DType::F32,
            TowerPrecision::F16 | TowerPrecision::F16Weights => DType::F16,
        }
    }
}

/// Whether `device` computes in `f16`: a GPU whose adapter offers 16-bit floats in shaders
/// (burn's cubecl runtime requests every feature the adapter has, `shader-f16` included, when it
/// creates the device). Never the CPU backend.
pub fn offers_f16(device: &Device) -> bool {
    crate::model::gpu::is_gpu(device) && device.supports_dtype(DType::F16)
}

impl FromStr for ComputePrecision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(ComputePrecision::Auto),
            "f32" => Ok(ComputePrecision::F32),
            "f16" => Ok(ComputePrecision::F16),
            other => Err(Error::InvalidArgument(format!("precision must be auto, f32 or f16, got {other:?}"))),
        }
    }
}

impl fmt::Display for ComputePrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ComputePrecision::Auto => "auto",
            ComputePrecision::F32 => "f32",
            ComputePrecision::F16 => "f16",
        })
    }
}

impl fmt::Display for TowerPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TowerPrecision::F32 => "f32",
            TowerPrecision::F16 => "f16",
            TowerPrecision::F16Weights => "f16-weights",
        })
    }
}

/// What each tower of a loaded model computes in (`None`: the tower is not loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Precisions {
    /// The image tower's.
    pub image: Option<TowerPrecision>,
    /// The text tower's.
    pub text: Option<TowerPrecision>,
}

/// Where a model computes and in what precision: a [`Device`] alone (precision
/// [`ComputePrecision::Auto`]) or `(device, precision)`, for the loading functions of
/// [`crate::MobileClip`].
#[derive(Clone, Debug)]
pub struct Placement {
    /// The device the model is loaded onto.
    pub device: Device,
    /// The precision asked for.
    pub precision: ComputePrecision,
}

impl From<Device> for Placement {
    fn from(device: Device) -> Self {
        Self { device, precision: ComputePrecision::Auto }
    }
}

impl From<(Device, ComputePrecision)> for Placement {
    fn from((device, precision): (Device, ComputePrecision)) -> Self {
        Self { device, precision }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `auto` halves text and ViT towers and only the fused kernels' weights of convolutional
    /// image towers, explicit `f16` every tower, and none of it where the device has no `f16`
    /// (no error: `f32` then).
    #[test]
    fn what_each_request_gives_per_tower_kind() {
        use ComputePrecision::*;
        use TowerKind::*;
        use TowerPrecision as P;
        for (asked, kind, with, without) in [
            (Auto, Text, P::F16, P::F32),
            (Auto, VitImage, P::F16, P::F32),
            (Auto, ConvImage, P::F16Weights, P::F32),
            (F16, Text, P::F16, P::F32),
            (F16, VitImage, P::F16, P::F32),
            (F16, ConvImage, P::F16, P::F32),
            (F32, Text, P::F32, P::F32),
            (F32, VitImage, P::F32, P::F32),
            (F32, ConvImage, P::F32, P::F32),
        ] {
            assert_eq!(asked.resolve(kind, true), with, "{asked} {kind:?} with f16");
            assert_eq!(asked.resolve(kind, false), without, "{asked} {kind:?} without f16");
        }
    }

    /// What each tower precision stores its activations and its fused kernels' weights in, and
    /// how it is named.
    #[test]
    fn element_types_and_names() {
        use TowerPrecision as P;
        for (p, activations, weights, name) in [
            (P::F32, DType::F32, DType::F32, "f32"),
            (P::F16, DType::F16, DType::F16, "f16"),
            (P::F16Weights, DType::F32, DType::F16, "f16-weights"),
        ] {
            assert_eq!((p.dtype(), p.weights_dtype(), p.to_string().as_str()), (activations, weights, name), "{p:?}");
        }
    }

    #[test]
    fn parses_and_refuses_with_a_code() {
        for p in [ComputePrecision::Auto, ComputePrecision::F32, ComputePrecision::F16] {
            assert_eq!(p.to_string().parse::<ComputePrecision>().unwrap(), p);
        }
        for bad in ["F16", "fp16", "", "bf16"] {
            let e = bad.parse::<ComputePrecision>().unwrap_err();
            assert_eq!(e.code(), "INVALID_ARGUMENT", "{bad}: {e}");
        }
    }
}
