//! Blocks shared by the image and text towers, one file per block named after the reference.

pub mod convffn;
pub mod layers;
pub mod multi_head_attention;
pub mod repmixer;
pub mod transformer;
