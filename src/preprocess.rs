//! Placeholder until the preprocessing module lands (being written in parallel).
use serde::{Deserialize, Serialize};
/// Resampling filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Bilinear,
    Bicubic,
}
/// Preprocessing parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreprocessConfig {
    pub image_size: usize,
    pub interpolation: Interpolation,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}
/// shim
pub enum PixelFormat {
    Rgb8,
    Rgba8,
}
/// shim
pub struct ImageView<'a> {
    pub data: &'a [u8],
}
/// shim
pub fn preprocess(_i: &ImageView, _c: &PreprocessConfig) -> crate::Result<Vec<f32>> {
    Err(crate::Error::Image("shim".into()))
}
