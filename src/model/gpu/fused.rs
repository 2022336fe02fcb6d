//! This crate's own GPU kernels (cubecl), for what burn's ops would spread over many dispatches:
//! LayerNorm in one kernel (one workgroup per row: mean, variance, scale and shift), and
//! multi-head attention in one kernel (one workgroup per query row and head: scores, mask,
//! softmax and the weighted sum of the values, read straight from the packed projection, so no
//! copies split or merge the heads).
//!
//! They reach burn's tensors through burn's backend extension: [`FusedOps`] is implemented for
//! `CubeBackend` (the kernels), and `#[backend_extension(Cube, Fusion)]` generates the lazy
//! implementation for burn's fusion backend (the kernel is recorded in the fusion stream like any
//! other operation, and runs when its output is needed) and the routing from `Tensor`'s dispatch.
//! Only the GPU builds (features `webgpu`, `wgpu`) compile this module; the CPU modules never see it.

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
fn layer_norm_kernel<F: Float>(
    x: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    out: &mut Tensor<F>,
    width: usize,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    let mut red = Shared::<[F]>::new_slice(BLOCK);
    let row = CUBE_POS_X as usize * width;
    let unit = UNIT_POS_X as usize;
    let mut sum = F::new(0.0);
    let mut i = unit;
    while i < width {
        sum += x[row + i];
        i += BLOCK;
    }
    let mean = reduce_block::<F>(&mut red, sum, false) / F::cast_from(width as u32);
    let mut squares = F::new(0.0);
    let mut i = unit;
    while i < width {
        let d = x[row + i] - mean;
        squares += d * d;
        i += BLOCK;
    }
    let var = reduce_block::<F>(&mut red, squares, false) / F::cast_from(width as u32);
    let scale = F::new(1.0) / (var + F::cast_from(epsilon)).sqrt();
    let mut i = unit;
    while i < width {
        out[row + i] = (x[row + i] - mean) * scale * gamma[i] + beta[i];
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
    let mut query = Shared::<[F]>::new_slice(head_dim);
    let mut scores = Shared::<[F]>::new_slice(max_keys);
    let mut red = Shared::<[F]>::new_slice(BLOCK);
    let unit = UNIT_POS_X as usize;
    let row = CUBE_POS_X as usize;
    let seq = CUBE_POS_Y as usize / layout.heads;
    let head = CUBE_POS_Y as usize % layout.heads;
    let q_row = seq * layout.rows + row;
    let q_at = q_row * layout.q_stride + layout.q_col + head * head_dim;
    let mut d = unit;
    while d < head_dim {
        query[d] = q[q_at + d] * F::cast_from(scale);
        d += BLOCK;
    }
    sync_cube();
    let first_key = seq * layout.keys;
    let k_at = layout.k_col + head * head_dim;
    let mut best = F::new(-3.0e38);
    let mut j = unit;
    while j < limit {
        let at = (first_key + j) * layout.kv_stride + k_at;
        let mut s = F::new(0.0);
        for d in 0..head_dim {
            s += query[d] * kv[at + d];
        }
        scores[j] = s;
        best = F::max(best, s);
        j += BLOCK;
    }
    let best = reduce_block::<F>(&mut red, best, true);
    let mut total = F::new(0.0);
    let mut j = unit;
    while j < limit {
        let p = (scores[j] - best).exp();
        scores[j] = p;
        total += p;
        j += BLOCK;
    }
    let total = reduce_block::<F>(&mut red, total, false);
    let v_at = layout.v_col + head * head_dim;
    let out_at = q_row * layout.heads * head_dim + head * head_dim;
    let mut d = unit;
    while d < head_dim {
        let mut acc = F::new(0.0);
        for j in 0..limit {
            acc += scores[j] * kv[(first_key + j) * layout.kv_stride + v_at + d];
        }
        out[out_at + d] = acc / total;
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

/// Side of the square output tile one workgroup of the linear kernels computes (one unit per
/// output), and the depth of the slices of `x` and `w` it stages in shared memory.
const TILE: usize = 16;

/// `x·w` at this unit's output (row `CUBE_POS_Y·TILE + UNIT_POS_Y`, column `CUBE_POS_X·TILE +
/// UNIT_POS_X`; zero outside `rows × cols`): `x` `[rows, inner]` and `w` `[inner, cols]`
/// (`transposed`: `w` holds `[cols, inner]`, a 1×1 convolution's kernel), both contiguous,
/// through `TILE × TILE` tiles in shared memory.
#[cube]
#[allow(clippy::manual_div_ceil)] // #[cube] translates operators, not `usize::div_ceil`
fn product_at<F: Float>(x: &Tensor<F>, w: &Tensor<F>, dims: &Dims, #[comptime] transposed: bool) -> F {
    let (rows, inner, cols) = (dims.rows, dims.inner, dims.cols);
    let mut xs = Shared::<[F]>::new_slice(TILE * TILE);
    let mut ws = Shared::<[F]>::new_slice(TILE * TILE);
    let (ty, tx) = (UNIT_POS_Y as usize, UNIT_POS_X as usize);
    let (row, col) = (out_row(), out_col());
    let mut acc = F::new(0.0);
    let tiles = (inner + TILE - 1) / TILE;
    for t in 0..tiles {
        let k = t * TILE;
        xs[ty * TILE + tx] = if row < rows && k + tx < inner { x[row * inner + k + tx] } else { F::new(0.0) };
        let at = if transposed { col * inner + k + ty } else { (k + ty) * cols + col };
        ws[ty * TILE + tx] = if k + ty < inner && col < cols { w[at] } else { F::new(0.0) };
        sync_cube();
        for i in 0..TILE {
            acc += xs[ty * TILE + i] * ws[i * TILE + tx];
        }
        sync_cube();
    }
    acc
}

/// The output row of this unit in a linear kernel (`TILE × TILE` units per workgroup).
#[cube]
fn out_row() -> usize {
    CUBE_POS_Y as usize * TILE + UNIT_POS_Y as usize
}

/// The output column of this unit in a linear kernel.
#[cube]
fn out_col() -> usize {
    CUBE_POS_X as usize * TILE + UNIT_POS_X as usize
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
fn linear_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    bias: &Tensor<F>,
    out: &mut Tensor<F>,
    dims: Dims,
    #[comptime] gelu: bool,
    #[comptime] transposed: bool,
    #[define(F)] _dtype: ElemType,
) {
    let acc = product_at::<F>(x, w, &dims, transposed);
    let (row, col, cols) = (out_row(), out_col(), dims.cols);
    if row < dims.rows && col < cols {
        let y = acc + bias[col];
        if gelu {
            out[row * cols + col] =
                y * F::new(0.5) * (F::new(1.0) + (y * F::new(core::f32::consts::FRAC_1_SQRT_2)).erf());
        } else {
            out[row * cols + col] = y;
        }
    }
}

/// `x·w + bias + residual`: `out` `[rows, cols]`.
#[cube(launch)]
fn linear_add_kernel<F: Float>(
    x: &Tensor<F>,
    w: &Tensor<F>,
    bias: &Tensor<F>,
    residual: &Tensor<F>,
    out: &mut Tensor<F>,
    dims: Dims,
    #[comptime] transposed: bool,
    #[define(F)] _dtype: ElemType,
) {
    let acc = product_at::<F>(x, w, &dims, transposed);
    let (row, col, cols) = (out_row(), out_col(), dims.cols);
    if row < dims.rows && col < cols {
        out[row * cols + col] = acc + bias[col] + residual[row * cols + col];
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

/// Runs `launch` with the elements of `dtype`, which must be f32 (the callers check).
fn f32_only(dtype: DType) -> ElemType {
    assert_eq!(dtype, DType::F32, "the fused GPU kernels run in f32");
    dtype_to_storage_type(dtype)
}

impl FusedOps for CubeBackend {
    fn layer_norm(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, epsilon: f32) -> CubeTensor {
        let x = into_contiguous(x);
        let width = *x.meta.shape().last().expect("a LayerNorm input has an axis");
        let rows = x.meta.num_elements() / width;
        let out = empty_like(&x, x.meta.shape().clone());
        let elem = f32_only(x.dtype);
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
            elem,
        );
        out
    }

    fn attention(qkv: CubeTensor, heads: usize, causal: bool) -> CubeTensor {
        let qkv = into_contiguous(qkv);
        let &[b, n, c3] = qkv.meta.shape().as_slice() else { panic!("qkv is [B, N, 3·C]") };
        let (c, head_dim) = (c3 / 3, c3 / 3 / heads);
        let layout = LayoutLaunch::new(c3, c3, 0, c, 2 * c, n, n, heads);
        let out = empty_like(&qkv, Shape::new([b, n, c]));
        let elem = f32_only(qkv.dtype);
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
        let elem = f32_only(q.dtype);
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
    fn linear(x: CubeTensor, weight: CubeTensor, bias: CubeTensor, gelu: bool, transposed: bool) -> CubeTensor {
        let Product { x, weight, out, dims: [rows, inner, cols], elem } = Product::new(x, weight, transposed);
        linear_kernel::launch(
            &x.client.clone(),
            tiles(rows, cols),
            CubeDim::new_2d(TILE as u32, TILE as u32),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            into_contiguous(bias).into_tensor_arg(),
            out.clone().into_tensor_arg(),
            DimsLaunch::new(rows, inner, cols),
            gelu,
            transposed,
            elem,
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
        let Product { x, weight, out, dims: [rows, inner, cols], elem } = Product::new(x, weight, transposed);
        let residual = into_contiguous(residual).into_tensor_arg();
        linear_add_kernel::launch(
            &x.client.clone(),
            tiles(rows, cols),
            CubeDim::new_2d(TILE as u32, TILE as u32),
            x.into_tensor_arg(),
            weight.into_tensor_arg(),
            into_contiguous(bias).into_tensor_arg(),
            residual,
            out.clone().into_tensor_arg(),
            DimsLaunch::new(rows, inner, cols),
            transposed,
            elem,
        );
        out
    }
}

/// The operands of a linear kernel: `x` and the weight as the kernel reads them, the output,
/// `[rows, inner, cols]` and the element type.
struct Product {
    x: CubeTensor,
    weight: CubeTensor,
    out: CubeTensor,
    dims: [usize; 3],
    elem: ElemType,
}

impl Product {
    fn new(x: CubeTensor, weight: CubeTensor, transposed: bool) -> Self {
        let x = into_contiguous(x);
        let weight = if transposed { kernel_rows(weight) } else { into_contiguous(weight) };
        let [inner, cols] = inner_cols(weight.meta.shape(), transposed);
        let rows = x.meta.num_elements() / inner;
        let out = empty_like(&x, linear_shape(x.meta.shape(), weight.meta.shape(), &transposed));
        let elem = f32_only(x.dtype);
        Product { x, weight, out, dims: [rows, inner, cols], elem }
    }
}

/// The workgroups covering a `rows × cols` output in `TILE × TILE` tiles.
fn tiles(rows: usize, cols: usize) -> CubeCount {
    CubeCount::Static(cols.div_ceil(TILE) as u32, rows.div_ceil(TILE) as u32, 1)
}
