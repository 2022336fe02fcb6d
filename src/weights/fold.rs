//! Structural re-parameterisation in host memory: BatchNorm folded into convolutions, identity
//! and 1×1 branches padded into k×k kernels, layer scales folded into the layer they scale.
//!
//! These are the same equations as the reference's `reparameterize()` methods (MobileOne,
//! RepMixer, RepCPE, ReparamLargeKernelConv), applied while loading so that inference runs the
//! fused graph whichever form the checkpoint has.

use super::{HostTensor, Weights};
use crate::config::BN_EPS;


/// BatchNorm statistics and affine parameters, as an inference-time per-channel affine map.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// γ.
    pub weight: Vec<f32>,
    /// β.
    pub bias: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
}

impl BatchNorm {
    /// Takes `prefix.{weight,bias,running_mean,running_var}` (and skips `num_batches_tracked`).
    pub fn load(w: &mut Weights, prefix: &str, channels: usize) -> Self {
        w.skip(&format!("{prefix}.num_batches_tracked"));
        Self {
            weight: w.take_vec(&format!("{prefix}.weight"), channels),
            bias: w.take_vec(&format!("{prefix}.bias"), channels),
            mean: w.take_vec(&format!("{prefix}.running_mean"), channels),
            var: w.take_vec(&format!("{prefix}.running_var"), channels),
        }
    }

    /// The per-channel `(scale, shift)` with `bn(x) = scale * x + shift`.
    pub fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self.weight.iter().zip(&self.var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
        let shift = self.bias.iter().zip(&self.mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        (scale, shift)
    }
}

/// Folds `bn(conv(x))` (a bias-free convolution) into one convolution: `(kernel, bias)`.
pub fn fuse_conv_bn(mut kernel: HostTensor, bn: &BatchNorm) -> (HostTensor, Vec<f32>) {
    let (scale, shift) = bn.scale_shift();
    let per_out = kernel.data.len() / scale.len();
    for (o, chunk) in kernel.data.chunks_mut(per_out).enumerate() {
        chunk.iter_mut().for_each(|v| *v *= scale[o]);
    }
    (kernel, shift)
}

/// The kernel of a (grouped) convolution computing the identity: `[C, C / groups, kh, kw]`
/// with a one at the centre tap of each channel's own input.
pub fn identity_kernel(channels: usize, in_per_group: usize, kh: usize, kw: usize) -> HostTensor {
    let mut t = HostTensor::zeros(&[channels, in_per_group, kh, kw]);
    for c in 0..channels {
        let i = c % in_per_group;
        t.data[((c * in_per_group + i) * kh + kh / 2) * kw + kw / 2] = 1.0;
    }
    t
}

/// Zero-pads a `[O, I, h, w]` kernel to `[O, I, kh, kw]`, centred.
pub fn pad_kernel(t: &HostTensor, kh: usize, kw: usize) -> HostTensor {
    let [o, i, h, w] = t.shape[..] else { panic!("pad_kernel expects a 4-d kernel") };
    assert!(
        h <= kh && w <= kw && (kh - h).is_multiple_of(2) && (kw - w).is_multiple_of(2),
        "cannot centre a {h}x{w} kernel in {kh}x{kw}"
    );
    let (dy, dx) = ((kh - h) / 2, (kw - w) / 2);
    let mut out = HostTensor::zeros(&[o, i, kh, kw]);
    for oi in 0..o * i {
        for y in 0..h {
            let src = (oi * h + y) * w;
            let dst = (oi * kh + y + dy) * kw + dx;
            out.data[dst..dst + w].copy_from_slice(&t.data[src..src + w]);
        }
    }
    out
}

/// `a += b` element-wise.
pub fn add_assign(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "fold: length mismatch");
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// Multiplies each output channel (first dimension) of `t` by `scale[o]`.
pub fn scale_rows(t: &mut [f32], scale: &[f32]) {
    let per = t.len() / scale.len();
    for (o, chunk) in t.chunks_mut(per).enumerate() {
        chunk.iter_mut().for_each(|v| *v *= scale[o]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_kernel_centres() {
        let t = HostTensor { shape: vec![1, 1, 1, 1], data: vec![2.0] };
        let p = pad_kernel(&t, 3, 3);
        assert_eq!(p.data, vec![0., 0., 0., 0., 2., 0., 0., 0., 0.]);
        let t = HostTensor { shape: vec![1, 1, 1, 3], data: vec![1.0, 2.0, 3.0] };
        let p = pad_kernel(&t, 3, 5);
        assert_eq!(p.data[5..10], [0., 1., 2., 3., 0.]);
    }

    #[test]
    fn identity_kernel_grouped() {
        let k = identity_kernel(4, 2, 1, 3);
        // channel c has its one at input c % 2, centre column 1
        let at = |c: usize, i: usize, x: usize| k.data[(c * 2 + i) * 3 + x];
        assert_eq!(at(0, 0, 1), 1.0);
        assert_eq!(at(1, 1, 1), 1.0);
        assert_eq!(at(2, 0, 1), 1.0);
        assert_eq!(at(3, 1, 1), 1.0);
        assert_eq!(k.data.iter().sum::<f32>(), 4.0);
    }

    #[test]
    fn conv_bn_fold_matches_formula() {
        let k = HostTensor { shape: vec![2, 1, 1, 1], data: vec![1.0, 2.0] };
        let bn = BatchNorm {
            weight: vec![2.0, 1.0],
            bias: vec![0.5, -1.0],
            mean: vec![1.0, 0.0],
            var: vec![4.0 - BN_EPS, 1.0 - BN_EPS],
        };
        let (k, b) = fuse_conv_bn(k, &bn);
        // scale = [2/2, 1/1]; shift = [0.5 - 1*1, -1 - 0]
        assert!((k.data[0] - 1.0).abs() < 1e-6 && (k.data[1] - 2.0).abs() < 1e-6);
        assert!((b[0] + 0.5).abs() < 1e-6 && (b[1] + 1.0).abs() < 1e-6);
    }
}
