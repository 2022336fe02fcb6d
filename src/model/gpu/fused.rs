//! This crate's own GPU kernels (cubecl), for what burn's ops would spread over many dispatches:
//! LayerNorm in one kernel (one workgroup per row: mean, variance, scale and shift), and
//! multi-head attention in one kernel (one workgroup per query row and head: scores, mask,
//! softmax and the weighted sum of the values, read straight from the packed projection, so no
//! copies split or merge the heads), linear layers and 1×1 convolutions with their bias and
//! GELU or residual (each unit a 4×4 block of outputs in registers), squeeze-excite (one
//! workgroup per image: pooling, both small products, the gate and the scaling), and a
//! RepMixer's two depthwise convolutions in a row (one workgroup per tile of the map and group
//! of channels, the first convolution's output around the tile kept in shared memory).
//!
//! They reach burn's tensors through burn's backend extension: [`FusedOps`] is implemented for
//! `CubeBackend` (the kernels), and `#[backend_extension(Cube, Fusion)]` generates the lazy
//! implementation for burn's fusion backend (the kernel is recorded in the fusion stream like any
//! other operation, and runs when its output is needed) and the routing from `Tensor`'s dispatch.
//! Only the GPU builds (features `webgpu`, `wgpu`) compile this module; the CPU modules never see it.
//!
//! Every kernel takes activations of one float type `F`, `f32` or `f16` (a tower computing in
//! half precision, see [`crate::precision`]), and the kernels with parameters (weights, biases,
//! LayerNorm's scale and shift) take those in a float type `W` of their own, `f32` or `f16`
//! (`f16` beside `f32` activations: [`crate::TowerPrecision::F16Weights`]); they read both
//! widened to `f32`, compute in `f32` (sums, LayerNorm's statistics, softmax, GELU, the gate) and
//! round only what they write to `F`: for `f32` tensors the casts are no-ops.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{Backend, backend_extension};
use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use cubecl::prelude::*;

/// Units per workgroup of both kernels (a power of two: the reductions halve it).
const BLOCK: usize = 64;

/// The sum (`max == false`) or maximum of `value` over the workgroup's units (`BLOCK`, a power
/// of two), through `red` (`BLOCK` slots), returned to every unit.
#[cube]
fn reduce_block<F: Float>(red: &mut Shared<[F]>, value: F, #[comptime] max: bool) -> F {
    let unit = UNIT_POS_X as usize;
    red[unit] = value;
    sync_cube();
    let mut half = CUBE_DIM_X as usize / 2;
    while half > 0 {
        if unit < half {
            if max {
                red[unit] = F::max(red[unit], red[unit + half]);
            } else {
                red[unit] = red[unit] + red[unit + half];
            }
        }
        sync_cube();
        half /= 2;
    }
    let out = red[0];
    sync_cube();
    out
}

/// LayerNorm of each `width`-long row of `x` (contiguous): one workgroup per row.
#[cube(launch)]
fn layer_norm_kernel<F: Float, W: Float>(
    x: &Tensor<F>,
    gamma: &Tensor<W>,
    beta: &Tensor<W>,
    out: &mut Tensor<F>,
    width: usize,
    epsilon: f32,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let mut red = Shared::<[f32]>::new_slice(BLOCK);
    let row = CUBE_POS_X as usize * width;
    let unit = UNIT_POS_X as usize;
    let mut sum = f32::new(0.0);
    let mut i = unit;
    while i < width {
        sum += f32::cast_from(x[row + i]);
        i += BLOCK;
    }
    let mean = reduce_block::<f32>(&mut red, sum, false) / f32::cast_from(width as u32);
    let mut squares = f32::new(0.0);
    let mut i = unit;
    while i < width {
        let d = f32::cast_from(x[row + i]) - mean;
        squares += d * d;
        i += BLOCK;
    }
    let var = reduce_block::<f32>(&mut red, squares, false) / f32::cast_from(width as u32);
    let scale = f32::new(1.0) / (var + epsilon).sqrt();
    let mut i = unit;
    while i < width {
        let y = (f32::cast_from(x[row + i]) - mean) * scale * f32::cast_from(gamma[i]) + f32::cast_from(beta[i]);
        out[row + i] = F::cast_from(y);
        i += BLOCK;
    }
}

/// Where the heads of one attention call lie, in elements.
#[derive(CubeLaunch, CubeType, Clone, Copy)]
struct Layout {
    /// Row stride of the queries' tensor and the keys/values' tensor.
    q_stride: usize,
    kv_stride: usize,
    /// Column of the first query, key and value of head 0 (head `h` is `h · head_dim` further).
    q_col: usize,
    k_col: usize,
    v_col: usize,
    /// Query rows and key rows per sequence.
    rows: usize,
    keys: usize,
    heads: usize,
}

/// One query row of one head (the workgroup's: `CUBE_POS_X` the row, `CUBE_POS_Y` the sequence
/// and head): `softmax(q·kᵀ · scale)·v` over the first `limit` keys of its sequence, written
/// to `out` (`[B·rows, heads·head_dim]`).
#[cube]
fn attend_row<F: Float>(
    q: &Tensor<F>,
    kv: &Tensor<F>,
    out: &mut Tensor<F>,
    layout: &Layout,
    limit: usize,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] max_keys: usize,
) {
    let mut query = Shared::<[f32]>::new_slice(head_dim);
    let mut scores = Shared::<[f32]>::new_slice(max_keys);
    let mut red = Shared::<[f32]>::new_slice(BLOCK);
    let unit = UNIT_POS_X as usize;
    let row = CUBE_POS_X as usize;
    let seq = CUBE_POS_Y as usize / layout.heads;
    let head = CUBE_POS_Y as usize % layout.heads;
    let q_row = seq * layout.rows + row;
    let q_at = q_row * layout.q_stride + layout.q_col + head * head_dim;
    let mut d = unit;
    while d < head_dim {
        query[d] = f32::cast_from(q[q_at + d]) * scale;
        d += BLOCK;
    }
    sync_cube();
    let first_key = seq * layout.keys;
    let k_at = layout.k_col + head * head_dim;
    let mut best = f32::new(-3.0e38);
    let mut j = unit;
    while j < limit {
        let at = (first_key + j) * layout.kv_stride + k_at;
        let mut s = f32::new(0.0);
        for d in 0..head_dim {
            s += query[d] * f32::cast_from(kv[at + d]);
        }
        scores[j] = s;
        best = f32::max(best, s);
        j += BLOCK;
    }
    let best = reduce_block::<f32>(&mut red, best, true);
    let mut total = f32::new(0.0);
    let mut j = unit;
    while j < limit {
        let p = (scores[j] - best).exp();
        scores[j] = p;
        total += p;
        j += BLOCK;
    }
    let total = reduce_block::<f32>(&mut red, total, false);
    let v_at = layout.v_col + head * head_dim;
    let out_at = q_row * layout.heads * head_dim + head * head_dim;
    let mut d = unit;
    while d < head_dim {
        let mut acc = f32::new(0.0);
        for j in 0..limit {
            acc += scores[j] * f32::cast_from(kv[(first_key + j) * layout.kv_stride + v_at + d]);
        }
        out[out_at + d] = F::cast_from(acc / total);
        d += BLOCK;
    }
}

/// Attention over a packed `qkv` (`[B·N, 3·C]`): every row a query; `causal`: row `i` attends
/// to keys `0..=i`.
#[cube(launch)]
fn attention_kernel<F: Float>(
    qkv: &Tensor<F>,
    out: &mut Tensor<F>,
    layout: Layout,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] max_keys: usize,
    #[comptime] causal: bool,
    #[define(F)] _dtype: ElemType,
) {
    let limit = if causal { CUBE_POS_X as usize + 1 } else { layout.keys };
    attend_row::<F>(qkv, qkv, out, &layout, limit, scale, head_dim, max_keys);
}

/// Attention of query rows `q` (`[B·R, C]`) over keys and values `kv` (`[B·N, 2·C]`), query row
/// `r` of sequence `b` over that sequence's first `limits[b·R + r]` keys.
#[cube(launch)]
fn attention_rows_kernel<F: Float>(
    q: &Tensor<F>,
    kv: &Tensor<F>,
    limits: &Tensor<F>,
    out: &mut Tensor<F>,
    layout: Layout,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] max_keys: usize,
    #[define(F)] _dtype: ElemType,
) {
    let seq = CUBE_POS_Y as usize / layout.heads;
    let limit = u32::cast_from(limits[seq * layout.rows + CUBE_POS_X as usize]) as usize;
    attend_row::<F>(q, kv, out, &layout, limit, scale, head_dim, max_keys);
}

/// Outputs per unit of the linear kernels along each axis: every unit keeps a `SPAN × SPAN`
/// block of the output in registers, so each value it loads serves `SPAN` products (one output
/// per unit, through tiles in shared memory and a barrier per slice, made a full-size
/// MobileCLIP-S0 image 4.5× slower on Chromium's SwiftShader than burn's convolutions).
const SPAN: usize = 4;

/// Units per workgroup of the linear kernels along each axis (`UNITS · SPAN` outputs).
const UNITS: usize = 8;

/// `x·w` over this unit's `SPAN × SPAN` outputs (rows from [`first_row`], columns from
/// [`first_col`]), summed in `f32` into `acc` (`acc[i·SPAN + j]`: row `i`, column `j` of the block): `x`
/// `[rows, inner]` and `w` `[inner, cols]` (`transposed`: `w` holds `[cols, inner]`, a 1×1
/// convolution's kernel), both contiguous. Rows and columns past the edges read the last ones
/// (their outputs are not written), so every load is in bounds without a branch.
#[cube]
fn product_block<F: Float, W: Float>(
    x: &Tensor<F>,
    w: &Tensor<W>,
    dims: &Dims,
    acc: &mut Array<f32>,
    #[comptime] transposed: bool,
) {
    let (rows, inner, cols) = (dims.rows, dims.inner, dims.cols);
    let (row, col) = (first_row(), first_col());
    let mut x_at = Array::<usize>::new(SPAN);
    let mut w_at = Array::<usize>::new(SPAN);
    #[unroll]
    for i in 0..SPAN {
        x_at[i] = min(row + i, rows - 1) * inner;
        let c = min(col + i, cols - 1);
        w_at[i] = if transposed { c * inner } else { c };
    }
    #[unroll]
    for i in 0..SPAN * SPAN {
        acc[i] = f32::new(0.0);
    }
    let mut w_step = cols;
    if transposed {
        w_step = 1;
    }
    let mut a = Array::<f32>::new(SPAN);
    for k in 0..inner {
        #[unroll]
        for i in 0..SPAN {
            a[i] = f32::cast_from(x[x_at[i] + k]);
        }
        #[unroll]
        for j in 0..SPAN {
            let b = f32::cast_from(w[w_at[j] + k * w_step]);
            #[unroll]
            for i in 0..SPAN {
                acc[i * SPAN + j] += a[i] * b;
            }
        }
    }
}

/// The first output row of this unit's block in a linear kernel (the row blocks run along Y,
/// then Z: see [`tiles`]).
#[cube]
fn first_row() -> usize {
    let block = CUBE_POS_Z as usize * CUBE_COUNT_Y as usize + CUBE_POS_Y as usize;
    (block * UNITS + UNIT_POS_Y as usize) * SPAN
}

/// The first output column of this unit's block in a linear kernel.
#[cube]
fn first_col() -> usize {
    (CUBE_POS_X as usize * UNITS + UNIT_POS_X as usize) * SPAN
}

/// The sizes of a product: `x` `[rows, inner]` · `w` `[inner, cols]`.
#[derive(CubeLaunch, CubeType, Clone, Copy)]
struct Dims {
    rows: usize,
    inner: usize,
    cols: usize,
}

/// `x·w + bias`, then exact GELU when `gelu`: `out` `[rows, cols]`.
#[cube(launch)]
fn linear_kernel<F: Float, W: Float>(
    x: &Tensor<F>,
    w: &Tensor<W>,
    bias: &Tensor<W>,
    out: &mut Tensor<F>,
    dims: Dims,
    #[comptime] gelu: bool,
    #[comptime] transposed: bool,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let mut acc = Array::<f32>::new(SPAN * SPAN);
    product_block::<F, W>(x, w, &dims, &mut acc, transposed);
    let (row, col, cols) = (first_row(), first_col(), dims.cols);
    #[unroll]
    for i in 0..SPAN {
        #[unroll]
        for j in 0..SPAN {
            if row + i < dims.rows && col + j < cols {
                let y = acc[i * SPAN + j] + f32::cast_from(bias[col + j]);
                if gelu {
                    out[(row + i) * cols + col + j] = F::cast_from(gelu_of::<f32>(y));
                } else {
                    out[(row + i) * cols + col + j] = F::cast_from(y);
                }
            }
        }
    }
}

/// Exact (erf) GELU of `y`.
#[cube]
fn gelu_of<A: Float>(y: A) -> A {
    y * A::new(0.5) * (A::new(1.0) + (y * A::new(core::f32::consts::FRAC_1_SQRT_2)).erf())
}

/// `x·w + bias + residual`: `out` `[rows, cols]`.
#[cube(launch)]
fn linear_add_kernel<F: Float, W: Float>(
    x: &Tensor<F>,
    w: &Tensor<W>,
    bias: &Tensor<W>,
    residual: &Tensor<F>,
    out: &mut Tensor<F>,
    dims: Dims,
    #[comptime] transposed: bool,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let mut acc = Array::<f32>::new(SPAN * SPAN);
    product_block::<F, W>(x, w, &dims, &mut acc, transposed);
    let (row, col, cols) = (first_row(), first_col(), dims.cols);
    #[unroll]
    for i in 0..SPAN {
        #[unroll]
        for j in 0..SPAN {
            if row + i < dims.rows && col + j < cols {
                let at = (row + i) * cols + col + j;
                out[at] =
                    F::cast_from(acc[i * SPAN + j] + f32::cast_from(bias[col + j]) + f32::cast_from(residual[at]));
            }
        }
    }
}

/// Units per workgroup of the squeeze-excite kernel.
const SE_BLOCK: usize = 256;

/// The most channels plus reduced channels the squeeze-excite kernel takes (their values live in
/// the workgroup's shared memory, of which WebGPU guarantees 16 KiB).
pub const MAX_SE_CHANNELS: usize = 3072;

/// Squeeze-excite over one image (the workgroup's, `CUBE_POS_X`) of `x` (`[B, plane, channels]`
/// tokens): the mean of each channel, `relu(w1·mean + b1)` (`w1` `[reduced, channels]`),
/// `sigmoid(w2·that + b2)` (`w2` `[channels, reduced]`), and `x` scaled by it per channel, then
/// exact GELU when `gelu`, into `out`.
#[cube(launch)]
fn squeeze_excite_kernel<F: Float, W: Float>(
    x: &Tensor<F>,
    w1: &Tensor<W>,
    b1: &Tensor<W>,
    w2: &Tensor<W>,
    b2: &Tensor<W>,
    out: &mut Tensor<F>,
    plane: usize,
    #[comptime] channels: usize,
    #[comptime] reduced: usize,
    #[comptime] gelu: bool,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let mut gate = Shared::<[f32]>::new_slice(channels);
    let mut hidden = Shared::<[f32]>::new_slice(reduced);
    let unit = UNIT_POS_X as usize;
    let first = CUBE_POS_X as usize * plane * channels;
    let mut c = unit;
    while c < channels {
        let mut sum = f32::new(0.0);
        for p in 0..plane {
            sum += f32::cast_from(x[first + p * channels + c]);
        }
        gate[c] = sum / f32::cast_from(plane as u32);
        c += SE_BLOCK;
    }
    sync_cube();
    let mut r = unit;
    while r < reduced {
        let mut y = f32::cast_from(b1[r]);
        for k in 0..channels {
            y += f32::cast_from(w1[r * channels + k]) * gate[k];
        }
        hidden[r] = f32::max(y, f32::new(0.0));
        r += SE_BLOCK;
    }
    sync_cube();
    let mut c = unit;
    while c < channels {
        let mut y = f32::cast_from(b2[c]);
        for k in 0..reduced {
            y += f32::cast_from(w2[c * reduced + k]) * hidden[k];
        }
        gate[c] = f32::new(1.0) / (f32::new(1.0) + (f32::new(0.0) - y).exp());
        c += SE_BLOCK;
    }
    sync_cube();
    let mut i = unit;
    while i < plane * channels {
        let y = f32::cast_from(x[first + i]) * gate[i % channels];
        if gelu {
            out[first + i] = F::cast_from(gelu_of::<f32>(y));
        } else {
            out[first + i] = F::cast_from(y);
        }
        i += SE_BLOCK;
    }
}

/// Side of the square of output positions one workgroup of the depthwise pair computes (one
/// unit per position and channel group pass).
const PAIR_TILE: usize = 8;

/// Channels per workgroup of the depthwise pair.
const PAIR_CHANNELS: usize = 8;

/// The shared memory the depthwise pair needs, in values, for kernels `first` and `second`
/// (`[kh, kw]` each): the input around a tile and the first convolution's output around it.
pub fn pair_shared_values([k1h, k1w]: [usize; 2], [k2h, k2w]: [usize; 2]) -> usize {
    let mid = (PAIR_TILE + 2 * (k2h / 2)) * (PAIR_TILE + 2 * (k2w / 2));
    let input = (PAIR_TILE + 2 * (k2h / 2 + k1h / 2)) * (PAIR_TILE + 2 * (k2w / 2 + k1w / 2));
    (mid + input) * PAIR_CHANNELS
}

/// The most values the depthwise pair keeps in shared memory (WebGPU guarantees 16 KiB).
pub const MAX_PAIR_SHARED: usize = 4096;

/// The sizes of a channels-last feature map.
#[derive(CubeLaunch, CubeType, Clone, Copy)]
struct Map {
    height: usize,
    width: usize,
    channels: usize,
    /// Tiles per row of the map.
    tiles_x: usize,
}

/// Two depthwise convolutions in a row (stride 1, zero padding of half the kernel, with biases)
/// over `x` `[B, H, W, C]`: `mid = conv1(x)` and `conv2(mid)`, both written, to `out`
/// `[2, B, H, W, C]`. One workgroup per `PAIR_TILE²` tile, `PAIR_CHANNELS` channels and image
/// (`CUBE_POS_X`, `_Y`, `_Z`): the input around the tile into shared memory, `mid` around it
/// (zero outside the map, as `conv2` pads it), then `conv2` on the tile. `w1` `[C, k1h·k1w]`,
/// `w2` `[C, k2h·k2w]`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn depthwise_pair_kernel<F: Float, W: Float>(
    x: &Tensor<F>,
    w1: &Tensor<W>,
    b1: &Tensor<W>,
    w2: &Tensor<W>,
    b2: &Tensor<W>,
    out: &mut Tensor<F>,
    map: Map,
    #[comptime] k1h: usize,
    #[comptime] k1w: usize,
    #[comptime] k2h: usize,
    #[comptime] k2w: usize,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    // Margins: of `mid` around the tile, of the input around `mid`.
    let (m2y, m2x) = comptime!((k2h / 2, k2w / 2));
    let (m1y, m1x) = comptime!((k1h / 2 + k2h / 2, k1w / 2 + k2w / 2));
    let (mid_h, mid_w) = comptime!((PAIR_TILE + 2 * m2y, PAIR_TILE + 2 * m2x));
    let (in_h, in_w) = comptime!((PAIR_TILE + 2 * m1y, PAIR_TILE + 2 * m1x));
    let mut input = Shared::<[f32]>::new_slice(comptime!(in_h * in_w * PAIR_CHANNELS));
    let mut mid = Shared::<[f32]>::new_slice(comptime!(mid_h * mid_w * PAIR_CHANNELS));
    let (height, width, channels) = (map.height, map.width, map.channels);
    let y0 = (CUBE_POS_X as usize / map.tiles_x) * PAIR_TILE;
    let x0 = (CUBE_POS_X as usize % map.tiles_x) * PAIR_TILE;
    let c0 = CUBE_POS_Y as usize * PAIR_CHANNELS;
    let image = CUBE_POS_Z as usize * height * width * channels;
    let unit = UNIT_POS_X as usize;

    let mut i = unit;
    while i < in_h * in_w * PAIR_CHANNELS {
        let (c, ry, rx) = (i % PAIR_CHANNELS, i / PAIR_CHANNELS / in_w, (i / PAIR_CHANNELS) % in_w);
        let (y, x_, ch) = (y0 + ry, x0 + rx, c0 + c);
        input[i] = if y >= m1y && y - m1y < height && x_ >= m1x && x_ - m1x < width && ch < channels {
            f32::cast_from(x[image + ((y - m1y) * width + x_ - m1x) * channels + ch])
        } else {
            f32::new(0.0)
        };
        i += CUBE_DIM_X as usize;
    }
    sync_cube();

    let mut i = unit;
    while i < mid_h * mid_w * PAIR_CHANNELS {
        let (c, ry, rx) = (i % PAIR_CHANNELS, i / PAIR_CHANNELS / mid_w, (i / PAIR_CHANNELS) % mid_w);
        let (y, x_, ch) = (y0 + ry, x0 + rx, c0 + c);
        let mut v = f32::new(0.0);
        if y >= m2y && y - m2y < height && x_ >= m2x && x_ - m2x < width && ch < channels {
            v = f32::cast_from(b1[ch]);
            #[unroll]
            for dy in 0..k1h {
                #[unroll]
                for dx in 0..k1w {
                    v += input[((ry + dy) * in_w + rx + dx) * PAIR_CHANNELS + c]
                        * f32::cast_from(w1[ch * k1h * k1w + dy * k1w + dx]);
                }
            }
            let (ty, tx) = (ry - m2y, rx - m2x);
            if ry >= m2y && rx >= m2x && ty < PAIR_TILE && tx < PAIR_TILE {
                out[image + ((y - m2y) * width + x_ - m2x) * channels + ch] = F::cast_from(v);
            }
        }
        mid[i] = v;
        i += CUBE_DIM_X as usize;
    }
    sync_cube();

    let second = CUBE_COUNT_Z as usize * height * width * channels;
    let mut i = unit;
    while i < PAIR_TILE * PAIR_TILE * PAIR_CHANNELS {
        let (c, ty, tx) = (i % PAIR_CHANNELS, i / PAIR_CHANNELS / PAIR_TILE, (i / PAIR_CHANNELS) % PAIR_TILE);
        let (y, x_, ch) = (y0 + ty, x0 + tx, c0 + c);
        if y < height && x_ < width && ch < channels {
            let mut v = f32::cast_from(b2[ch]);
            #[unroll]
            for dy in 0..k2h {
                #[unroll]
                for dx in 0..k2w {
                    v += mid[((ty + dy) * mid_w + tx + dx) * PAIR_CHANNELS + c]
                        * f32::cast_from(w2[ch * k2h * k2w + dy * k2w + dx]);
                }
            }
            out[second + image + (y * width + x_) * channels + ch] = F::cast_from(v);
        }
        i += CUBE_DIM_X as usize;
    }
}

/// `[.., inner]` · `[inner, cols]` (`transposed`: `[cols, inner, ..]`) → `[.., cols]`.
fn linear_shape(x: &Shape, w: &Shape, transposed: &bool) -> Shape {
    let mut shape = x.clone();
    let last = shape.num_dims() - 1;
    shape[last] = if *transposed { w[0] } else { w[1] };
    shape
}

/// `[inner, cols]` of a weight (`transposed`: stored `[cols, inner, ..]`).
fn inner_cols(w: &Shape, transposed: bool) -> [usize; 2] {
    if transposed { [w[1], w[0]] } else { [w[0], w[1]] }
}

/// A 1×1 convolution's kernel `[O, I, 1, 1]` as `[O, I]` row-major memory: what it is when
/// contiguous in either NCHW or channels-last (the 1×1 axes carry no data), else copied.
fn kernel_rows(w: CubeTensor) -> CubeTensor {
    let strides = w.meta.strides();
    if strides[1] == 1 && strides[0] == w.meta.shape()[1] { w } else { into_contiguous(w) }
}

/// A depthwise kernel `[C, 1, kh, kw]` as `[C, kh·kw]` row-major memory: what it is when
/// contiguous in either NCHW or channels-last (one input channel per group), else copied.
fn kernel_taps(w: CubeTensor) -> CubeTensor {
    let (shape, strides) = (w.meta.shape(), w.meta.strides());
    let rows = strides[0] == shape[2] * shape[3] && strides[2] == shape[3] && strides[3] == 1;
    if rows { w } else { into_contiguous(w) }
}

/// `[B, H, W, C]` → `[2·B, H, W, C]`.
fn pair_shape(x: &Shape) -> Shape {
    let mut shape = x.clone();
    shape[0] *= 2;
    shape
}

/// `[.., 3·C]` → `[.., C]`.
fn attention_shape(qkv: &Shape) -> Shape {
    let mut shape = qkv.clone();
    let last = shape.num_dims() - 1;
    shape[last] /= 3;
    shape
}

/// The fused operations (see the module's documentation).
#[backend_extension(Cube, Fusion)]
pub trait FusedOps: Backend {
    /// LayerNorm over the last axis of `x`: `(x − mean) / √(var + epsilon) · gamma + beta`.
    #[fusion(dtype = x, shape = x)]
    fn layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self>;

    /// Multi-head attention over `qkv` `[B, N, 3·C]` (`[3, heads, head_dim]` along the last
    /// axis): `[B, N, C]`; `causal`: position `i` attends to `0..=i` only.
    #[fusion(dtype = qkv, shape = attention_shape(qkv))]
    fn attention(qkv: FloatTensor<Self>, heads: usize, causal: bool) -> FloatTensor<Self>;

    /// Multi-head attention of queries `q` `[B, R, C]` over keys and values `kv` `[B, N, 2·C]`
    /// (`[2, heads, head_dim]`): `[B, R, C]`, query row `r` of sequence `b` over the first
    /// `limits[b·R + r]` keys of its sequence (`limits`: `[B·R]`, whole numbers as floats).
    #[fusion(dtype = q, shape = q)]
    fn attention_rows(
        q: FloatTensor<Self>,
        kv: FloatTensor<Self>,
        limits: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self>;

    /// A linear layer with its epilogue in one kernel: `x·weight + bias` (`weight` `[in, out]`;
    /// `transposed`: a 1×1 convolution's `[out, in, 1, 1]` kernel), then exact GELU when `gelu`.
    #[fusion(dtype = x, shape = linear_shape(x, weight, transposed))]
    fn linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gelu: bool,
        transposed: bool,
    ) -> FloatTensor<Self>;

    /// Squeeze-excite over tokens `x` `[B, H·W, C]` in one kernel: `x · sigmoid(fc2(relu(fc1(
    /// mean over H·W))))` per image and channel, then exact GELU when `gelu`; `fc1` a 1×1
    /// convolution `[R, C, 1, 1]` with `b1`, `fc2` `[C, R, 1, 1]` with `b2`
    /// (C + R at most [`MAX_SE_CHANNELS`]).
    #[fusion(dtype = x, shape = x)]
    fn squeeze_excite(
        x: FloatTensor<Self>,
        fc1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        fc2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
        gelu: bool,
    ) -> FloatTensor<Self>;

    /// Two depthwise convolutions in a row over `x` `[B, H, W, C]` (channels-last), stride 1,
    /// zero padding of half the kernel: `mid = conv(x, w1) + b1` and `conv(mid, w2) + b2`,
    /// stacked: `[2·B, H, W, C]` (`w1`, `w2`: `[C, 1, kh, kw]` kernels; see
    /// [`pair_shared_values`] for the sizes it takes).
    #[fusion(dtype = x, shape = pair_shape(x))]
    fn depthwise_pair(
        x: FloatTensor<Self>,
        w1: FloatTensor<Self>,
        b1: FloatTensor<Self>,
        w2: FloatTensor<Self>,
        b2: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x·weight + bias + residual` in one kernel (`residual` shaped like the output).
    #[fusion(dtype = x, shape = residual)]
    fn linear_add(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        transposed: bool,
    ) -> FloatTensor<Self>;
}

/// An uninitialised contiguous tensor shaped `shape` beside `like`.
fn empty_like(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, like.dtype)
}

/// The kernels' element type `F` for tensors of `dtype`: `f32` or `f16` (the callers check with
/// `model::gpu::fused_kernels`).
fn float_elem(dtype: DType) -> ElemType {
    assert!(super::fused_dtype(dtype), "the fused GPU kernels take f32 or f16 tensors, not {dtype:?}");
    dtype_to_storage_type(dtype)
}

/// The kernels' element type `W` of a layer's `parameters` (its weights and biases, uploaded in
/// one type: see `VarBuilder::fused`).
fn parameters_elem(parameters: &[&CubeTensor]) -> ElemType {
    let dtype = parameters[0].dtype;
    assert!(parameters.iter().all(|p| p.dtype == dtype), "a layer's parameters in one type");
    float_elem(dtype)
}

impl FusedOps for CubeBackend {
    fn layer_norm(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, epsilon: f32) -> CubeTensor {
        let x = into_contiguous(x);
        let width = *x.meta.shape().last().expect("a LayerNorm input has an axis");
        let rows = x.meta.num_elements() / width;
        let out = empty_like(&x, x.meta.shape().clone());
        let elems = [float_elem(x.dtype), parameters_elem(&[&gamma, &beta])];
        layer_norm_kernel::launch(
            &x.client.clone(),
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(BLOCK as u32),
            x.into_tensor_arg(),
            into_contiguous(gamma).into_tensor_arg(),
            into_contiguous(beta).into_tensor_arg(),
            out.clone().into_tensor_arg(),
            width,
            epsilon,
            elems,
        );
        out
    }

    fn attention(qkv: CubeTensor, heads: usize, causal: bool) -> CubeTensor {
        let qkv = into_contiguous(qkv);
        let &[b, n, c3] = qkv.meta.shape().as_slice() else { panic!("qkv is [B, N, 3·C]") };
        let (c, head_dim) = (c3 / 3, c3 / 3 / heads);
        let layout = LayoutLaunch::new(c3, c3, 0, c, 2 * c, n, n, heads);
        let out = empty_like(&qkv, Shape::new([b, n, c]));
        let elem = float_elem(qkv.dtype);
        attention_kernel::launch(
            &qkv.client.clone(),
            CubeCount::Static(n as u32, (b * heads) as u32, 1),
            CubeDim::new_1d(BLOCK as u32),
            qkv.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            layout,
            (head_dim as f32).powf(-0.5),
            head_dim,
            n,
            causal,
            elem,
        );
        out
    }

    fn attention_rows(q: CubeTensor, kv: CubeTensor, limits: CubeTensor, heads: usize) -> CubeTensor {
        let (q, kv) = (into_contiguous(q), into_contiguous(kv));
        let &[b, r, c] = q.meta.shape().as_slice() else { panic!("q is [B, R, C]") };
        let n = kv.meta.shape()[1];
        let head_dim = c / heads;
        let layout = LayoutLaunch::new(c, 2 * c, 0, 0, c, r, n, heads);
        let out = empty_like(&q, Shape::new([b, r, c]));
        let elem = float_elem(q.dtype);
        attention_rows_kernel::launch(
            &q.client.clone(),
            CubeCount::Static(r as u32, (b * heads) as u32, 1),
            CubeDim::new_1d(BLOCK as u32),
            q.into_tensor_arg(),
            kv.into_tensor_arg(),
            into_contiguous(limits).into_tensor_arg(),
            out.clone().into_tensor_arg(),
            layout,
            (head_dim as f32).powf(-0.5),
            head_dim,
            n,
            elem,
        );
        out
    }
    fn squeeze_excite(
        x: CubeTensor,
        fc1: CubeTensor,
        b1: CubeTensor,
        fc2: CubeTensor,
        b2: CubeTensor,
        gelu: bool,
    ) -> CubeTensor {
        let x = into_contiguous(x);
        let &[b, plane, channels] = x.meta.shape().as_slice() else { panic!("x is [B, H·W, C]") };
        let (fc1, fc2) = (kernel_rows(fc1), kernel_rows(fc2));
        let reduced = fc1.meta.shape()[0];
        let out = empty_like(&x, x.meta.shape().clone());
        let elems = [float_elem(x.dtype), parameters_elem(&[&fc1, &b1, &fc2, &b2])];
        squeeze_excite_kernel::launch(
            &x.client.clone(),
            CubeCount::Static(b as u32, 1, 1),
            CubeDim::new_1d(SE_BLOCK as u32),
            x.into_tensor_arg(),
            fc1.into_tensor_arg(),
            into_contiguous(b1).into_tensor_arg(),
            fc2.into_tensor_arg(),
            into_contiguous(b2).into_tensor_arg(),
            out.clone().into_tensor_arg(),
            plane,
            channels,
            reduced,
            gelu,
            elems,
        );
        out
    }

    fn depthwise_pair(x: CubeTensor, w1: CubeTensor, b1: CubeTensor, w2: CubeTensor, b2: CubeTensor) -> CubeTensor {
        let x = into_contiguous(x);
        let &[b, height, width, channels] = x.meta.shape().as_slice() else { panic!("x is [B, H, W, C]") };
        let taps = |w: &CubeTensor| (w.meta.shape()[2], w.meta.shape()[3]);
        let (k1, k2) = (taps(&w1), taps(&w2));
        let tiles_x = width.div_ceil(PAIR_TILE);
        let out = empty_like(&x, pair_shape(x.meta.shape()));
        let elems = [float_elem(x.dtype), parameters_elem(&[&w1, &b1, &w2, &b2])];
        depthwise_pair_kernel::launch(
            &x.client.clone(),
            CubeCount::Static(
                (height.div_ceil(PAIR_TILE) * tiles_x) as u32,
                channels.div_ceil(PAIR_CHANNELS) as u32,
                b as u32,
            ),
            CubeDim::new_1d((PAIR_TILE * PAIR_TILE) as u32),
            x.into_tensor_arg(),
            kernel_taps(w1).into_tensor_arg(),
            into_contiguous(b1).into_tensor_arg(),
            kernel_taps(w2).into_tensor_arg(),
            into_contiguous(b2).into_tensor_arg(),
            out.clone().into_tensor_arg(),
            MapLaunch::new(height, width, channels, tiles_x),
            k1.0,
            k1.1,
            k2.0,
            k2.1,
            elems,
        );
        out
    }

    fn linear(x: CubeTensor, weight: CubeTensor, bias: CubeTensor, gelu: bool, transposed: bool) -> CubeTensor {
        let Product { x, weight, out, dims: [rows, inner, cols], elems } = Product::new(x, weight, &bias, transposed);
        linear_kernel::launch(
            &x.client.clone(),
            tiles(rows, cols),
            CubeDim::new_2d(UNITS as u32, UNITS as u32),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            into_contiguous(bias).into_tensor_arg(),
            out.clone().into_tensor_arg(),
            DimsLaunch::new(rows, inner, cols),
            gelu,
            transposed,
            elems,
        );
        out
    }

    fn linear_add(
        x: CubeTensor,
        weight: CubeTensor,
        bias: CubeTensor,
        residual: CubeTensor,
        transposed: bool,
    ) -> CubeTensor {
        let Product { x, weight, out, dims: [rows, inner, cols], elems } = Product::new(x, weight, &bias, transposed);
        let residual = into_contiguous(residual).into_tensor_arg();
        linear_add_kernel::launch(
            &x.client.clone(),
            tiles(rows, cols),
            CubeDim::new_2d(UNITS as u32, UNITS as u32),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            into_contiguous(bias).into_tensor_arg(),
            residual,
            out.clone().into_tensor_arg(),
            DimsLaunch::new(rows, inner, cols),
            transposed,
            elems,
        );
        out
    }
}

/// The operands of a linear kernel: `x` and the weight as the kernel reads them, the output,
/// `[rows, inner, cols]` and the element types (of `x`, of the weight and bias).
struct Product {
    x: CubeTensor,
    weight: CubeTensor,
    out: CubeTensor,
    dims: [usize; 3],
    elems: [ElemType; 2],
}

impl Product {
    fn new(x: CubeTensor, weight: CubeTensor, bias: &CubeTensor, transposed: bool) -> Self {
        let x = into_contiguous(x);
        let weight = if transposed { kernel_rows(weight) } else { into_contiguous(weight) };
        let [inner, cols] = inner_cols(weight.meta.shape(), transposed);
        let rows = x.meta.num_elements() / inner;
        let out = empty_like(&x, linear_shape(x.meta.shape(), weight.meta.shape(), &transposed));
        let elems = [float_elem(x.dtype), parameters_elem(&[&weight, bias])];
        Product { x, weight, out, dims: [rows, inner, cols], elems }
    }
}

/// The most workgroups along one dimension of a dispatch (WebGPU's default
/// `maxComputeWorkgroupsPerDimension`).
const MAX_GROUPS: usize = 65_535;

/// The workgroups covering a `rows × cols` output, `UNITS · SPAN` square each: the row blocks
/// along Y, wrapping into Z past [`MAX_GROUPS`] (a 1×1 convolution over a large batch's
/// positions: S0's first stage passes it at about 512 images), the blocks past the last row
/// writing nothing.
fn tiles(rows: usize, cols: usize) -> CubeCount {
    let side = UNITS * SPAN;
    let blocks = rows.div_ceil(side).max(1);
    let y = blocks.min(MAX_GROUPS);
    CubeCount::Static(cols.div_ceil(side) as u32, y as u32, blocks.div_ceil(y) as u32)
}
