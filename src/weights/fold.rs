//! Structural re-parameterisation: every rule that turns a checkpoint's train-time tensors into
//! inference tensors, per block type, applied to a canonically named checkpoint by [`fold`].
//!
//! These are the equations of the reference's `reparameterize()` methods (MobileOne, RepMixer,
//! RepCPE, ReparamLargeKernelConv), plus BatchNorm folded into the convolution before it or the
//! linear layer after it, and layer scales folded into the layer they scale. Each block is
//! recognised by the names of its train-time parts (`conv_kxk`, `mixer`, `large_conv`,
//! `pos_enc`, ...) and its fused tensors are named as the reference names them once
//! re-parameterised (`reparam_conv`); a checkpoint that is already re-parameterised passes
//! through unchanged. Nothing here needs the model's architecture: the shapes come from the
//! checkpoint, and the model checks the fused ones when it is built.

use std::collections::BTreeSet;

use super::{Checkpoint, FusedWeights, HostTensor, Problems};
use crate::config::BN_EPS;
use crate::error::Error;

/// Folds every block of a canonically named checkpoint (see [`super::names`]) and passes the
/// other tensors through, converted to `f32`. Each tensor's values are released as they are
/// taken (moved into the fused map when passed through), so the checkpoint and the fused map
/// together hold about one model's values at any time.
pub fn fold(mut ckpt: Checkpoint) -> FusedWeights {
    let mut src = Sources { ckpt: &mut ckpt, taken: BTreeSet::new(), problems: Problems::default() };
    let mut out = FusedWeights::new();
    // Outer blocks first: a RepMixer folds the MobileOne blocks inside it, a MobileOne block
    // the conv + BatchNorm pairs of its branches, and what a rule takes is not seen again.
    for p in src.blocks(".mixer.") {
        if let Some((kernel, bias)) = repmixer(&mut src, &p) {
            out.put_conv(&mut src, &format!("{p}.reparam_conv"), kernel, bias);
        }
    }
    for p in src.blocks(".conv_kxk.") {
        if let Some((kernel, bias)) = mobileone(&mut src, &p, None) {
            out.put_conv(&mut src, &format!("{p}.reparam_conv"), kernel, bias);
        }
    }
    for p in src.blocks(".large_conv.") {
        if let Some((kernel, bias)) = large_kernel_conv(&mut src, &p) {
            out.put_conv(&mut src, &format!("{p}.reparam_conv"), kernel, bias);
        }
    }
    for p in src.blocks(".pos_enc.") {
        if let Some((kernel, bias)) = repcpe(&mut src, &p) {
            out.put_conv(&mut src, &format!("{p}.reparam_conv"), kernel, bias);
        }
    }
    for p in src.blocks_ending(".norm.running_var") {
        let qkv = format!("{p}.token_mixer.qkv");
        if src.has(&format!("{qkv}.weight"))
            && let Some((weight, bias)) = batch_norm_into_linear(&mut src, &format!("{p}.norm"), &qkv)
        {
            out.put_conv(&mut src, &qkv, weight, bias);
        }
    }
    for (scale, target) in LAYER_SCALES {
        for p in src.blocks_ending(&format!(".{scale}.gamma")) {
            let target = format!("{p}.{target}");
            if let Some((weight, bias)) = layer_scale(&mut src, &format!("{p}.{scale}.gamma"), &target) {
                out.put_conv(&mut src, &target, weight, bias);
            }
        }
    }
    for p in src.blocks(".bn.") {
        let conv = format!("{p}.conv");
        if src.has(&format!("{conv}.weight"))
            && let Some((kernel, bias)) = conv_bn(&mut src, &conv, &format!("{p}.bn"), None)
        {
            out.put_conv(&mut src, &conv, kernel, bias);
        }
    }
    out.folded = src.taken.clone();
    let rest: Vec<String> = src.ckpt.names().filter(|n| !src.taken.contains(*n)).map(String::from).collect();
    for name in rest {
        if out.contains(&name) {
            src.taken.insert(name.clone());
            src.problems.other(format!("`{name}` is in the checkpoint and also made by folding its block"));
            continue;
        }
        let Some(shape) = src.shape(&name).map(<[usize]>::to_vec) else { continue };
        match src.ckpt.take_f32(&name) {
            Ok(data) => {
                out.insert(name, HostTensor { shape, data }.into());
            }
            // A non-float dtype (`read_f32`'s only mismatch): not a weight of any model (an
            // integer buffer, the counter of a BatchNorm no rule folded).
            Err(Error::WeightsMismatch(_)) => {
                src.problems.unexpected(&name, " (not a float tensor)");
            }
            Err(e) => src.problems.unreadable(e),
        }
    }
    out.problems = src.problems;
    out
}

/// Layer scales and the layer each is folded into (`x + γ ⊙ f(x)`: `f`'s last layer scaled).
const LAYER_SCALES: &[(&str, &str)] = &[
    // RepMixerBlock (timm, Apple's image and text): γ after the ConvFFN.
    ("layer_scale", "mlp.fc2"),
    // AttentionBlock: γ₁ after the attention's output projection, γ₂ after the ConvFFN.
    ("layer_scale_1", "token_mixer.proj"),
    ("layer_scale_2", "mlp.fc2"),
];

impl FusedWeights {
    /// Inserts `prefix.weight` and `prefix.bias` made by a rule.
    fn put_conv(&mut self, src: &mut Sources, prefix: &str, weight: HostTensor, bias: Vec<f32>) {
        let n = bias.len();
        for (name, t) in [("weight", weight), ("bias", HostTensor { shape: vec![n], data: bias })] {
            if self.insert(format!("{prefix}.{name}"), t.into()).is_some() {
                src.problems.other(format!("`{prefix}.{name}` is made by folding two blocks"));
            }
        }
    }
}

/// The tensors of a canonically named checkpoint as the rules read them, with books of what
/// was taken and of what was missing or mis-shaped.
struct Sources<'a> {
    ckpt: &'a mut Checkpoint,
    taken: BTreeSet<String>,
    problems: Problems,
}

impl Sources<'_> {
    /// Whether `name` exists and is not taken yet.
    fn has(&self, name: &str) -> bool {
        !self.taken.contains(name) && self.ckpt.shape(name).is_some()
    }

    /// Whether a tensor under `prefix.` exists and is not taken yet.
    fn has_under(&self, prefix: &str) -> bool {
        let dotted = format!("{prefix}.");
        self.ckpt.names().any(|n| n.starts_with(&dotted) && !self.taken.contains(n))
    }

    fn shape(&self, name: &str) -> Option<&[usize]> {
        if self.taken.contains(name) { None } else { self.ckpt.shape(name) }
    }

    /// The distinct `P` of untaken names `P{marker}…`, sorted.
    fn blocks(&self, marker: &str) -> Vec<String> {
        let names = self.ckpt.names().filter(|n| !self.taken.contains(*n));
        names.filter_map(|n| n.find(marker).map(|i| n[..i].to_string())).collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// The `P` of untaken names `P{suffix}`, sorted.
    fn blocks_ending(&self, suffix: &str) -> Vec<String> {
        let names = self.ckpt.names().filter(|n| !self.taken.contains(*n));
        names.filter_map(|n| n.strip_suffix(suffix).map(String::from)).collect()
    }

    /// Takes `name`, which must have `shape` (size-1 dimensions may differ); a missing,
    /// mis-shaped or unreadable tensor is recorded and zeros stand in.
    fn take(&mut self, name: &str, shape: &[usize]) -> HostTensor {
        let found = self.shape(name).map(<[usize]>::to_vec);
        if found.is_some() {
            self.taken.insert(name.to_string());
        }
        if !self.problems.check(name, found.as_deref(), shape) {
            return HostTensor::zeros(shape);
        }
        match self.ckpt.take_f32(name) {
            Ok(data) => HostTensor { shape: shape.to_vec(), data },
            Err(e) => {
                self.problems.unreadable(e);
                HostTensor::zeros(shape)
            }
        }
    }

    /// Takes a 1-d tensor of `len` values.
    fn take_vec(&mut self, name: &str, len: usize) -> Vec<f32> {
        self.take(name, &[len]).data
    }

    /// The shape `[O, I, kh, kw]` of the convolution kernel `name`, which gives its block its
    /// geometry: recorded as missing or mis-shaped (and taken) unless a 4-d kernel is there.
    fn kernel_shape(&mut self, name: &str) -> Option<[usize; 4]> {
        let Some(shape) = self.shape(name).map(<[usize]>::to_vec) else {
            self.problems.missing(name, "[O, I, kh, kw]");
            return None;
        };
        match shape[..] {
            [o, i, h, w] if o * i * h * w > 0 => Some([o, i, h, w]),
            _ => {
                self.taken.insert(name.to_string());
                self.problems.misshaped(name, &shape, "a 4-d convolution kernel");
                None
            }
        }
    }

    /// Marks `name` as used without reading it.
    fn skip(&mut self, name: &str) {
        if self.shape(name).is_some() {
            self.taken.insert(name.to_string());
        }
    }
}

/// BatchNorm statistics and affine parameters, as an inference-time per-channel affine map.
#[derive(Clone, Debug)]
struct BatchNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl BatchNorm {
    /// Takes `prefix.{weight,bias,running_mean,running_var}` (and skips `num_batches_tracked`).
    fn take(src: &mut Sources, prefix: &str, channels: usize) -> Self {
        src.skip(&format!("{prefix}.num_batches_tracked"));
        Self {
            weight: src.take_vec(&format!("{prefix}.weight"), channels),
            bias: src.take_vec(&format!("{prefix}.bias"), channels),
            mean: src.take_vec(&format!("{prefix}.running_mean"), channels),
            var: src.take_vec(&format!("{prefix}.running_var"), channels),
        }
    }

    /// The per-channel `(scale, shift)` with `bn(x) = scale * x + shift`.
    fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self.weight.iter().zip(&self.var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
        let shift = self.bias.iter().zip(&self.mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        (scale, shift)
    }
}

/// A folded convolution: kernel and bias.
type Conv = (HostTensor, Vec<f32>);

/// BatchNorm after a bias-free convolution (timm's `ConvNormAct`, Apple's `conv_bn`, the ViT
/// stems): `bn(conv(x))` as one convolution. `shape`: the kernel's, when the block knows it.
fn conv_bn(src: &mut Sources, conv: &str, bn: &str, shape: Option<[usize; 4]>) -> Option<Conv> {
    let weight = format!("{conv}.weight");
    let shape = match shape {
        Some(s) => s,
        None => src.kernel_shape(&weight)?,
    };
    let kernel = src.take(&weight, &shape);
    Some(fuse_conv_bn(kernel, &BatchNorm::take(src, bn, shape[0])))
}

/// MobileOne block (`mobileone.py` / timm `MobileOneBlock.reparameterize`): the sum of its k×k
/// conv + BN branches `conv_kxk.{i}`, its 1×1 conv + BN `conv_scale` centred in the k×k kernel,
/// and its BN-only `identity` as an identity kernel. `geometry`: the kernel shape, for a block
/// with no k×k branch to read it from (the `norm` of a RepMixer).
fn mobileone(src: &mut Sources, p: &str, geometry: Option<[usize; 4]>) -> Option<Conv> {
    let reparam = format!("{p}.reparam_conv");
    if src.has(&format!("{reparam}.weight")) {
        let shape = src.kernel_shape(&format!("{reparam}.weight"))?;
        let kernel = src.take(&format!("{reparam}.weight"), &shape);
        return Some((kernel, src.take_vec(&format!("{reparam}.bias"), shape[0])));
    }
    let shape = match geometry {
        Some(g) => g,
        None => src.kernel_shape(&format!("{p}.conv_kxk.0.conv.weight"))?,
    };
    let [o, ig, kh, kw] = shape;
    let mut kernel = HostTensor::zeros(&shape);
    let mut bias = vec![0.0; o];
    let branches = (0..).take_while(|i| src.has_under(&format!("{p}.conv_kxk.{i}"))).count();
    for i in 0..branches {
        let b = format!("{p}.conv_kxk.{i}");
        let (k, b) = conv_bn(src, &format!("{b}.conv"), &format!("{b}.bn"), Some(shape))?;
        add_assign(&mut kernel.data, &k.data);
        add_assign(&mut bias, &b);
    }
    if src.has_under(&format!("{p}.conv_scale")) {
        let (k, b) = conv_bn(src, &format!("{p}.conv_scale.conv"), &format!("{p}.conv_scale.bn"), Some([o, ig, 1, 1]))?;
        if kh % 2 == 0 || kw % 2 == 0 {
            src.problems.misshaped(
                &format!("{p}.conv_kxk.0.conv.weight"),
                &shape,
                "an odd kernel to centre the 1×1 branch in",
            );
            return None;
        }
        add_assign(&mut kernel.data, &pad_kernel(&k, kh, kw).data);
        add_assign(&mut bias, &b);
    }
    if src.has_under(&format!("{p}.identity")) {
        let id = identity_kernel(o, ig, kh, kw);
        let (k, b) = fuse_conv_bn(id, &BatchNorm::take(src, &format!("{p}.identity"), o));
        add_assign(&mut kernel.data, &k.data);
        add_assign(&mut bias, &b);
    }
    Some((kernel, bias))
}

/// RepMixer (`mci.py`, `text/repmixer.py`, timm `RepMixer.reparameterize`): the train-time
/// `x + γ ⊙ (mixer(x) − norm(x))`, with MobileOne blocks `mixer` and `norm` (identity only), as
/// one depthwise convolution `id + γ ⊙ (W_mixer − W_norm)`, bias `γ ⊙ (b_mixer − b_norm)`.
/// Without a layer scale (timm's `layer_scale_init_value=None`), γ = 1.
fn repmixer(src: &mut Sources, p: &str) -> Option<Conv> {
    let (km, bm) = mobileone(src, &format!("{p}.mixer"), None)?;
    let shape: [usize; 4] = km.shape[..].try_into().expect("a 4-d kernel");
    let [d, ig, kh, kw] = shape;
    let (kn, bn) = mobileone(src, &format!("{p}.norm"), Some(shape))?;
    let gamma = format!("{p}.layer_scale.gamma");
    let scale = if src.has(&gamma) { src.take_vec(&gamma, d) } else { vec![1.0; d] };
    let mut kernel = identity_kernel(d, ig, kh, kw);
    let per = ig * kh * kw;
    let delta: Vec<f32> =
        km.data.iter().zip(&kn.data).enumerate().map(|(i, (m, n))| scale[i / per] * (m - n)).collect();
    add_assign(&mut kernel.data, &delta);
    let bias = bm.iter().zip(&bn).zip(&scale).map(|((m, n), s)| s * (m - n)).collect();
    Some((kernel, bias))
}

/// ReparamLargeKernelConv (`replknet.py`, timm): the large conv + BN plus the small conv + BN
/// centred in it.
fn large_kernel_conv(src: &mut Sources, p: &str) -> Option<Conv> {
    let (mut kernel, mut bias) = conv_bn(src, &format!("{p}.large_conv.conv"), &format!("{p}.large_conv.bn"), None)?;
    if src.has_under(&format!("{p}.small_conv")) {
        let [o, ig, kh, kw] = kernel.shape[..] else { unreachable!("a 4-d kernel") };
        let small = format!("{p}.small_conv.conv.weight");
        let shape = src.kernel_shape(&small)?;
        let [so, si, sh, sw] = shape;
        if so != o || si != ig || sh > kh || sw > kw || (kh - sh) % 2 == 1 || (kw - sw) % 2 == 1 {
            src.taken.insert(small.clone());
            src.problems.misshaped(&small, &shape, &format!("[{o}, {ig}, k, k] centred in {kh}×{kw}"));
            return None;
        }
        let (k, b) = conv_bn(src, &format!("{p}.small_conv.conv"), &format!("{p}.small_conv.bn"), Some(shape))?;
        add_assign(&mut kernel.data, &pad_kernel(&k, kh, kw).data);
        add_assign(&mut bias, &b);
    }
    Some((kernel, bias))
}

/// RepCPE (`mci.py`, timm `RepConditionalPosEnc`): `x + pe(x)` as one depthwise convolution.
fn repcpe(src: &mut Sources, p: &str) -> Option<Conv> {
    let weight = format!("{p}.pos_enc.weight");
    let shape = src.kernel_shape(&weight)?;
    let [d, ig, kh, kw] = shape;
    let mut kernel = identity_kernel(d, ig, kh, kw);
    add_assign(&mut kernel.data, &src.take(&weight, &shape).data);
    Some((kernel, src.take_vec(&format!("{p}.pos_enc.bias"), d)))
}

/// BatchNorm before a bias-free linear layer (FastViT's attention blocks with BatchNorm2d,
/// mci0–mci2): `W(s ⊙ x + t) = (W · diag(s)) x + W t`.
fn batch_norm_into_linear(src: &mut Sources, bn: &str, linear: &str) -> Option<Conv> {
    let name = format!("{linear}.weight");
    let shape = src.shape(&name)?.to_vec();
    let [rows, d] = shape[..] else {
        src.taken.insert(name.clone());
        src.problems.misshaped(&name, &shape, "a 2-d matrix");
        return None;
    };
    let mut weight = src.take(&name, &[rows, d]);
    let (s, t) = BatchNorm::take(src, bn, d).scale_shift();
    let bias = weight.data.chunks(d).map(|row| row.iter().zip(&t).map(|(a, b)| a * b).sum()).collect();
    weight.data.chunks_mut(d).for_each(|row| row.iter_mut().zip(&s).for_each(|(a, b)| *a *= b));
    Some((weight, bias))
}

/// A layer scale `γ` (`[C]` or `[C, 1, 1]`) folded into the layer `target` before it: its
/// weight's output channels and its bias scaled by `γ`.
fn layer_scale(src: &mut Sources, gamma: &str, target: &str) -> Option<Conv> {
    let c = src.shape(gamma)?.iter().product();
    let scale = src.take_vec(gamma, c);
    let name = format!("{target}.weight");
    let Some(shape) = src.shape(&name).map(<[usize]>::to_vec) else {
        src.problems.missing(&name, &format!("[{c}, …]"));
        return None;
    };
    if shape.first() != Some(&c) {
        src.taken.insert(name.clone());
        src.problems.misshaped(&name, &shape, &format!("[{c}, …] (the layer scale `{gamma}` has {c} channels)"));
        return None;
    }
    let mut weight = src.take(&name, &shape);
    let mut bias = src.take_vec(&format!("{target}.bias"), c);
    scale_rows(&mut weight.data, &scale);
    scale_rows(&mut bias, &scale);
    Some((weight, bias))
}

/// Folds `bn(conv(x))` (a bias-free convolution) into one convolution: `(kernel, bias)`.
fn fuse_conv_bn(mut kernel: HostTensor, bn: &BatchNorm) -> Conv {
    let (scale, shift) = bn.scale_shift();
    scale_rows(&mut kernel.data, &scale);
    (kernel, shift)
}

/// The kernel of a (grouped) convolution computing the identity: `[C, C / groups, kh, kw]`
/// with a one at the centre tap of each channel's own input.
fn identity_kernel(channels: usize, in_per_group: usize, kh: usize, kw: usize) -> HostTensor {
    let mut t = HostTensor::zeros(&[channels, in_per_group, kh, kw]);
    for c in 0..channels {
        let i = c % in_per_group;
        t.data[((c * in_per_group + i) * kh + kh / 2) * kw + kw / 2] = 1.0;
    }
    t
}

/// Zero-pads a `[O, I, h, w]` kernel to `[O, I, kh, kw]`, centred.
fn pad_kernel(t: &HostTensor, kh: usize, kw: usize) -> HostTensor {
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
fn add_assign(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "fold: length mismatch");
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// Multiplies each output channel (first dimension) of `t` by `scale[o]`.
fn scale_rows(t: &mut [f32], scale: &[f32]) {
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
