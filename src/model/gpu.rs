//! What the model does differently on a GPU (burn's cubecl backends: WebGPU in the browser,
//! wgpu natively), kept apart from the CPU path, which never takes these branches.
//!
//! burn-cubecl's convolutions work channels-last (NHWC): given an NCHW-contiguous input or
//! weight they first copy it to NHWC, a dispatch each, every call. So on a GPU the convolution
//! weights are stored channels-last (an NCHW view of NHWC memory) and activations stay
//! channels-last from one convolution to the next: the copies disappear.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use crate::weights::HostTensor;

/// Whether `device` is a GPU (a cubecl device), where the layouts of this module apply.
pub fn is_gpu(device: &Device) -> bool {
    #[cfg(any(feature = "webgpu", feature = "wgpu"))]
    {
        matches!(device.as_dispatch(), burn::backend::DispatchDevice::Cube(_))
    }
    #[cfg(not(any(feature = "webgpu", feature = "wgpu")))]
    {
        let _ = device;
        false
    }
}

/// A `[O, I, kh, kw]` convolution kernel as a parameter stored channels-last (`[O, kh, kw, I]`
/// in memory), viewed as `[O, I, kh, kw]`.
pub fn channels_last_kernel(kernel: HostTensor, device: &Device) -> Param<Tensor<4>> {
    let [o, i, kh, kw] = kernel.shape[..] else { panic!("a convolution kernel is 4-d") };
    let mut data = vec![0.0; kernel.data.len()];
    for oo in 0..o {
        for ii in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    data[((oo * kh + y) * kw + x) * i + ii] = kernel.data[((oo * i + ii) * kh + y) * kw + x];
                }
            }
        }
    }
    let t = Tensor::<4>::from_data(TensorData::new(data, [o, kh, kw, i]), device);
    Param::from_tensor(t.permute([0, 3, 1, 2]))
}

/// Preprocessed pixels (`batch` CHW images) as a `[B, 3, S, S]` tensor on `device`: on a GPU
/// an NCHW view of channels-last memory (rearranged on the host, so the first convolution needs
/// no copy), elsewhere NCHW.
pub fn pixels(pixels: &[f32], batch: usize, size: usize, device: &Device) -> Tensor<4> {
    if !is_gpu(device) {
        return Tensor::from_data(TensorData::new(pixels.to_vec(), [batch, 3, size, size]), device);
    }
    let plane = size * size;
    let mut hwc = vec![0.0; pixels.len()];
    for (b, image) in pixels.chunks(3 * plane).enumerate() {
        for c in 0..3 {
            for p in 0..plane {
                hwc[(b * plane + p) * 3 + c] = image[c * plane + p];
            }
        }
    }
    Tensor::<4>::from_data(TensorData::new(hwc, [batch, size, size, 3]), device).permute([0, 3, 1, 2])
}
