//! Blocks shared by the image and text towers (as Apple's `modules/common`), one file per
//! block named after the reference.

pub mod convffn;
pub mod layers;
pub mod multi_head_attention;
pub mod reparam_conv;
pub mod repmixer;
pub mod squeeze_excite;
pub mod transformer;
