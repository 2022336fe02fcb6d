//! The MobileCLIP model: image and text towers as burn modules, built from fused weights
//! through a [`crate::weights::VarBuilder`].
//!
//! - [`common`]: blocks both towers use (the transformer layer and its attention, the RepMixer
//!   block and its ConvFFN, the layer constructors), as Apple's `modules/common`;
//! - [`image`]: the MCi (FastViT) and ViT image towers and their blocks;
//! - [`text`]: the text towers;
//! - [`clip`]: both towers and the temperature;
//! - [`gpu`]: the layouts the towers use on a GPU (channels-last convolutions).

pub mod clip;
pub mod common;
pub mod gpu;
pub mod image;
pub mod text;
