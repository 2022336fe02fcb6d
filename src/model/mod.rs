//! The MobileCLIP model: image and text towers as burn modules.

pub mod attention;
pub mod clip;
pub mod image;
pub mod layers;
pub mod text;
