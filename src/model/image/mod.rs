//! Image encoders and their building blocks, one file per block as in the reference.

pub mod attention;
pub mod convffn;
pub mod mci;
pub mod patch_embed;
pub mod reparam_conv;
pub mod repcpe;
pub mod repmixer;
pub mod squeeze_excite;
pub mod vit;
