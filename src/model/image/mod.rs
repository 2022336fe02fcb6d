//! Image encoders and their own building blocks, one file per block as in the reference.

pub mod attention_block;
pub mod mci;
pub mod patch_embed;
pub mod vit;
