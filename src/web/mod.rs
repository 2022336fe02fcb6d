//! The wasm-bindgen adapter: the only code that knows JavaScript types. It exposes a low-level
//! `WasmModel` class; the public promise-based API (`MobileClip` in `js/index.js`) wraps it,
//! turning image sources into RGBA pixels and weights sources into bytes, cutting long batches
//! into calls of a few items (progress, cancellation, other calls in between), and freeing it
//! on `dispose()`. It is not part of the package's public API.
//!
//! Errors reach JavaScript as `Error` objects named `MobileClipError` with a stable `code`
//! (see [`crate::Error::code`]) and a message naming what was wrong.
//!
//! The same adapter is built three times: the CPU module (burn flex, SIMD128), with the
//! `threads` feature the threaded CPU module (flex's parallel kernels on a pool of Web Workers,
//! see [`threads`]) and, with the `webgpu` feature, the WebGPU module. Loading and encoding
//! methods return promises in all three, because a WebGPU result can only be read back
//! asynchronously in a browser and the threaded module computes on its pool, not on the calling
//! thread. They run the library's own methods, so batching, prompt ensembling and ranking are the
//! library's code.

use std::sync::Arc;

use js_sys::{Array, Float32Array, Promise, Reflect};
use wasm_bindgen::prelude::*;

use burn::tensor::Device;

use crate::preprocess::{ImageView, PixelFormat};
use crate::weights::{Checkpoint, WeightsReader, compact};
use crate::{BatchSize, ComputePrecision, Error, MobileClip, ModelConfig, zero_shot};

#[cfg(feature = "webgpu")]
mod gpu;
#[cfg(feature = "threads")]
mod threads;

/// The model a published checkpoint is taken for when `load` is given no model.
const DEFAULT_MODEL: &str = "MobileCLIP-S0";

/// Installs the panic hook so that a bug (never user input) shows a readable message.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// Converts a crate error into a JavaScript `Error` with a `code` property.
pub fn js_error(e: &Error) -> JsValue {
    error_with_code(e.code(), &e.to_string())
}

fn error_with_code(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name("MobileClipError");
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

/// One `Float32Array` per embedding.
fn js_rows(rows: &[Vec<f32>]) -> JsValue {
    rows.iter().map(|v| JsValue::from(Float32Array::from(v.as_slice()))).collect::<Array>().into()
}

/// Runs the computation `work` makes and resolves to `done(its result)` (`done` runs on this
/// thread): in the threaded module as a job of the thread pool, which drives it to the end (the
/// CPU answers at once); in the others as a future on this thread, which waits for a WebGPU
/// read-back without blocking.
fn compute<T: Send + 'static, F: Future<Output = crate::Result<T>> + 'static>(
    work: impl FnOnce() -> F + Send + 'static,
    done: impl FnOnce(T) -> Result<JsValue, JsValue> + 'static,
) -> Result<Promise, JsValue> {
    #[cfg(feature = "threads")]
    {
        threads::run(move || crate::now(work()), move |r| done(r.map_err(|e| js_error(&e))?))
    }
    #[cfg(not(feature = "threads"))]
    {
        Ok(wasm_bindgen_futures::future_to_promise(async move { done(work().await.map_err(|e| js_error(&e))?) }))
    }
}

/// Resolves to one `Float32Array` per embedding the computation gives.
fn rows_promise<F: Future<Output = crate::Result<Vec<Vec<f32>>>> + 'static>(
    work: impl FnOnce() -> F + Send + 'static,
) -> Result<Promise, JsValue> {
    compute(work, |r| Ok(js_rows(&r)))
}

/// `count` token sequences of flattened ids.
fn token_rows(ids: &[u32], count: usize) -> crate::Result<Vec<Vec<u32>>> {
    if count == 0 || !ids.len().is_multiple_of(count) {
        return Err(Error::Text(format!("{} ids do not split into {count} sequences", ids.len())));
    }
    Ok(ids.chunks(ids.len() / count).map(<[u32]>::to_vec).collect())
}

/// The CPU backend compiled in: flex by default; ndarray with the `ndarray` feature (built only
/// to compare the two in the browser benchmark). None in the WebGPU module.
#[cfg(feature = "flex")]
fn cpu_device() -> Device {
    #[cfg(feature = "ndarray")]
    {
        #[allow(deprecated)]
        Device::ndarray()
    }
    #[cfg(not(feature = "ndarray"))]
    {
        Device::flex()
    }
}

/// The device for a backend name: `"cpu"`, or `"webgpu"` once [`gpu::init_webgpu`] succeeded.
fn device_for(backend: &str) -> Result<Device, JsValue> {
    match backend {
        #[cfg(feature = "flex")]
        "cpu" => Ok(cpu_device()),
        #[cfg(not(feature = "flex"))]
        "cpu" => Err(error_with_code(
            "INVALID_ARGUMENT",
            "this module is the WebGPU build; the CPU backend is in the package's cpu modules",
        )),
        #[cfg(feature = "webgpu")]
        "webgpu" => gpu::device(),
        #[cfg(not(feature = "webgpu"))]
        "webgpu" => {
            Err(error_with_code("NO_WEBGPU", "this module is the CPU build; WebGPU is in the package's gpu module"))
        }
        other => {
            Err(error_with_code("INVALID_ARGUMENT", &format!("backend must be \"cpu\" or \"webgpu\", got {other:?}")))
        }
    }
}

/// The `precision` option of a load (`"auto"`, `"f32"` or `"f16"`; `auto` when not given).
fn precision_option(precision: Option<String>) -> Result<ComputePrecision, JsValue> {
    precision.as_deref().map_or(Ok(ComputePrecision::Auto), str::parse).map_err(|e| js_error(&e))
}

/// Bytes of linear memory this module instance holds (it only grows).
#[wasm_bindgen(js_name = memoryBytes)]
pub fn memory_bytes() -> f64 {
    core::arch::wasm32::memory_size(0) as f64 * 65536.0
}

/// Grows the memory by 64 MiB and traps (`unreachable`), as a call running out of memory would:
/// the package must then drop this instance (and the memory it grabbed) for a fresh one. Only the
/// package's tests of that recovery call it (through a `Symbol.for` key, so no ordinary use of the
/// package can).
#[cfg(not(feature = "threads"))]
#[wasm_bindgen(js_name = "__trapForTests")]
pub fn trap_for_tests() {
    grow_and_trap()
}

/// The threaded module's version of [`trap_for_tests`]: the trap happens in a pool job, where
/// the model's computations (and so their out-of-memory traps) run; a promise that rejects once
/// the pool reports its thread's failure.
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = "__trapForTests")]
pub fn trap_for_tests() -> Result<Promise, JsValue> {
    threads::run(
        || {
            grow_and_trap();
        },
        |()| Ok(JsValue::UNDEFINED),
    )
}

fn grow_and_trap() -> ! {
    core::arch::wasm32::memory_grow(0, 1024);
    core::arch::wasm32::unreachable()
}

/// The longest text the model takes, in characters ([`crate::MAX_TEXT_CHARS`]).
#[wasm_bindgen(js_name = maxTextChars)]
pub fn max_text_chars() -> usize {
    crate::MAX_TEXT_CHARS
}

/// Checks labels and templates as `labelEmbeddings` will (labels not blank, templates with `{}`),
/// so that a long list fails before any work, naming the label's index in the whole list.
#[wasm_bindgen(js_name = checkLabels)]
pub fn check_labels(labels: Vec<String>, templates: Vec<String>) -> Result<(), JsValue> {
    zero_shot::check_labels(&labels, &templates).map_err(|e| js_error(&e))
}

/// Converts a published checkpoint, streamed into `weights` (see [`WasmWeights`]), into a
/// compact file's bytes ([`compact::convert_stream`]), as `mobileclip convert` does: `model` a
/// shipped model name or a config as JSON text, `dtype` `f32` / `f16` / `int8` / `auto`,
/// `towers` `image` / `text` / `both`. Synchronous: the package calls it on the
/// single-threaded CPU module (in a worker with the worker helper); the WebGPU module has none.
#[cfg(feature = "flex")]
#[wasm_bindgen(js_name = convertStream)]
pub fn convert_stream(model: &str, weights: WasmWeights, dtype: &str, towers: &str) -> Result<Vec<u8>, JsValue> {
    let convert = || -> crate::Result<Vec<u8>> {
        let options =
            crate::weights::ConvertOptions { precision: dtype.parse()?, towers: towers.parse()?, ..Default::default() };
        compact::convert_stream(&ModelConfig::from_name_or_json(model)?, weights.reader, &options)
    };
    convert().map_err(|e| js_error(&e))
}

/// The model as the adapter holds it: in the threaded module it is freed on the pool, never on
/// the calling thread.
#[cfg(feature = "threads")]
type Model = threads::DropInPool<MobileClip>;
#[cfg(not(feature = "threads"))]
type Model = MobileClip;

/// Weights arriving in chunks (a download, a `Blob`'s stream): each chunk is read into wasm
/// memory tensor by tensor ([`WeightsReader`]); give it to `WasmModel.loadStream` when all
/// arrived. A chunk that shows the file is broken rejects (`INVALID_WEIGHTS`), and the
/// reader is then spent.
#[wasm_bindgen]
pub struct WasmWeights {
    reader: WeightsReader,
}

#[wasm_bindgen]
impl WasmWeights {
    /// A reader waiting for the first chunk; `size` is the file's size in bytes when known
    /// (no tensor's buffer is reserved larger than it).
    #[wasm_bindgen(constructor)]
    pub fn new(size: Option<f64>) -> WasmWeights {
        WasmWeights { reader: WeightsReader::with_size(size.filter(|&n| n > 0.0).map(|n| n as u64)) }
    }

    /// Reads the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
        self.reader.push(chunk).map_err(|e| js_error(&e))
    }

    /// Bytes read so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> f64 {
        self.reader.received() as f64
    }
}

/// A loaded model on the CPU (burn flex, wasm SIMD128) or on WebGPU.
#[wasm_bindgen]
pub struct WasmModel {
    /// Shared with the computations in progress (pool jobs, futures).
    inner: Arc<Model>,
}

#[wasm_bindgen]
impl WasmModel {
    /// Loads a model: a promise of a `WasmModel`. `model` is a shipped model name or a config
    /// as JSON text, or `undefined`: a compact file's own config then (MobileCLIP-S0 for a
    /// published checkpoint); `weights` the bytes of a published checkpoint (PyTorch zip or
    /// safetensors) or of a compact file; `backend` `"cpu"` or `"webgpu"` (after `initWebGpu`
    /// resolved); `weightsId` the bytes' SRI sha256 ([`crate::weights_id`]); `integrity`, when
    /// given, `"sha256-<base64>"`: checked against `weightsId` before anything is parsed
    /// (`INTEGRITY_MISMATCH`); `precision` `"auto"` (the default), `"f32"` or `"f16"` (see
    /// [`ComputePrecision`]; `f32` where the device has no `f16`, without an error).
    pub fn load(
        model: Option<String>,
        weights: Vec<u8>,
        backend: &str,
        weights_id: String,
        integrity: Option<String>,
        precision: Option<String>,
    ) -> Result<Promise, JsValue> {
        let device = (device_for(backend)?, precision_option(precision)?);
        let config = model.as_deref().map(ModelConfig::from_name_or_json).transpose().map_err(|e| js_error(&e))?;
        compute(
            move || async move {
                if let Some(integrity) = &integrity {
                    compact::check_integrity(&weights_id, integrity)?;
                }
                let ckpt = Checkpoint::from_bytes(weights)?;
                let config = match config {
                    None if !compact::is_compact(&ckpt) => Some(ModelConfig::builtin(DEFAULT_MODEL)?),
                    given => given,
                };
                MobileClip::load_checkpoint(config, ckpt, weights_id, device)
            },
            |inner| Ok(WasmModel { inner: Arc::new(Model::from(inner)) }.into()),
        )
    }

    /// Loads a model from weights streamed into `weights` (see [`WasmWeights`]): a promise of a
    /// `WasmModel`, as [`WasmModel::load`]; the weights id is the sha256 of the bytes streamed,
    /// and `integrity` is checked against it before the model is built.
    #[wasm_bindgen(js_name = loadStream)]
    pub fn load_stream(
        model: Option<String>,
        weights: WasmWeights,
        backend: &str,
        integrity: Option<String>,
        precision: Option<String>,
    ) -> Result<Promise, JsValue> {
        let device = (device_for(backend)?, precision_option(precision)?);
        let config = model.as_deref().map(ModelConfig::from_name_or_json).transpose().map_err(|e| js_error(&e))?;
        let reader = weights.reader;
        compute(
            move || async move {
                let (ckpt, digest) = reader.finish()?;
                let id = crate::sha256_id(&digest);
                if let Some(integrity) = &integrity {
                    compact::check_integrity(&id, integrity)?;
                }
                let config = match config {
                    None if !compact::is_compact(&ckpt) => Some(ModelConfig::builtin(DEFAULT_MODEL)?),
                    given => given,
                };
                MobileClip::load_checkpoint(config, ckpt, id, device)
            },
            |inner| Ok(WasmModel { inner: Arc::new(Model::from(inner)) }.into()),
        )
    }

    /// Which towers the model has: `"both"`, or `"image"` / `"text"` (from a one-tower compact
    /// file).
    #[wasm_bindgen(getter)]
    pub fn towers(&self) -> String {
        self.inner.towers().to_string()
    }

    /// What each tower computes in: `{ image, text }`, each `"f32"`, `"f16"` or `"f16-weights"`,
    /// or `null` for a tower the model does not have ([`MobileClip::precision`]).
    #[wasm_bindgen(getter)]
    pub fn precision(&self) -> JsValue {
        let p = self.inner.precision();
        let object = js_sys::Object::new();
        for (tower, precision) in [("image", p.image), ("text", p.text)] {
            let value = precision.map_or(JsValue::NULL, |p| p.to_string().into());
            let _ = Reflect::set(&object, &tower.into(), &value);
        }
        object.into()
    }

    /// Bytes the model's parameters hold (4 per value in `f32`, 2 in `f16`, as each is stored):
    /// what its load needs at least.
    #[wasm_bindgen(getter, js_name = parameterBytes)]
    pub fn parameter_bytes(&self) -> f64 {
        self.inner.parameter_bytes() as f64
    }

    /// The names of the shipped model configs.
    #[wasm_bindgen(js_name = modelNames)]
    pub fn model_names() -> Vec<String> {
        ModelConfig::builtin_names().map(String::from).collect()
    }

    /// The model's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.inner.config().name.clone()
    }

    /// Embedding dimension.
    #[wasm_bindgen(getter, js_name = embedDim)]
    pub fn embed_dim(&self) -> usize {
        self.inner.embed_dim()
    }

    /// Input resolution.
    #[wasm_bindgen(getter, js_name = imageSize)]
    pub fn image_size(&self) -> usize {
        self.inner.config().preprocess.image_size
    }

    /// `exp(logit_scale)`, clamped to 100.
    #[wasm_bindgen(getter, js_name = logitScale)]
    pub fn logit_scale(&self) -> f32 {
        self.inner.logit_scale()
    }

    /// The weights' id (`sha256-…` of the checkpoint).
    #[wasm_bindgen(getter, js_name = weightsId)]
    pub fn weights_id(&self) -> String {
        self.inner.weights_id().to_string()
    }

    /// The weights id label packs made by this model carry ([`MobileClip::label_pack_id`]): the
    /// checkpoint's, also for a compact file converted from it.
    #[wasm_bindgen(getter, js_name = labelPackId)]
    pub fn label_pack_id(&self) -> String {
        self.inner.label_pack_id().to_string()
    }

    /// Images per forward pass of the image tower.
    #[wasm_bindgen(getter, js_name = imageBatch)]
    pub fn image_batch(&self) -> usize {
        self.inner.batch_size().images
    }

    /// Texts per forward pass of the text tower.
    #[wasm_bindgen(getter, js_name = textBatch)]
    pub fn text_batch(&self) -> usize {
        self.inner.batch_size().texts
    }

    /// How many labels with `templates` templates each fill one text batch (at least 1).
    #[wasm_bindgen(js_name = labelsPerBatch)]
    pub fn labels_per_batch(&self, templates: usize) -> usize {
        self.inner.labels_per_batch(templates)
    }

    /// Sets the batch sizes (for the benchmark; not while a computation is pending).
    #[wasm_bindgen(js_name = setBatchSize)]
    pub fn set_batch_size(&mut self, images: usize, texts: usize) -> Result<(), JsValue> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            error_with_code("INVALID_ARGUMENT", "the batch size cannot change while a call is pending")
        })?;
        inner.set_batch_size(BatchSize { images, texts }).map_err(|e| js_error(&e))
    }

    /// Embeds RGBA images (straight alpha, as `ImageData`), one pixel array per image with its
    /// width and height: a promise of one L2-normalised `Float32Array` per image.
    #[wasm_bindgen(js_name = encodeRgba)]
    pub fn encode_rgba(
        &self,
        images: Vec<js_sys::Uint8Array>,
        widths: Vec<usize>,
        heights: Vec<usize>,
    ) -> Result<Promise, JsValue> {
        if images.len() != widths.len() || images.len() != heights.len() {
            return Err(error_with_code("INVALID_ARGUMENT", "images, widths and heights differ in length"));
        }
        let buffers: Vec<Vec<u8>> = images.iter().map(js_sys::Uint8Array::to_vec).collect();
        let inner = self.inner.clone();
        rows_promise(move || async move {
            let views = buffers
                .iter()
                .zip(widths.iter().zip(&heights))
                .map(|(b, (&w, &h))| ImageView::new(b, w, h, PixelFormat::Rgba8))
                .collect::<crate::Result<Vec<_>>>()?;
            inner.encode_images_async(&views).await
        })
    }

    /// Embeds preprocessed pixels (`count` images, CHW `f32`, as the reference's transforms
    /// produce): a promise of one L2-normalised `Float32Array` per image.
    #[wasm_bindgen(js_name = encodePixels)]
    pub fn encode_pixels(&self, pixels: Vec<f32>, count: usize) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        rows_promise(move || async move { inner.encode_pixels_async(&pixels, count).await })
    }

    /// Checks token-id sequences (`count` rows of `context_length` ids, flattened) as
    /// `encodeTokens` will, naming the sequence's index in the whole list.
    #[wasm_bindgen(js_name = checkTokens)]
    pub fn check_tokens(&self, ids: Vec<u32>, count: usize) -> Result<(), JsValue> {
        let rows = token_rows(&ids, count).map_err(|e| js_error(&e))?;
        self.inner.check_tokens(&rows).map(drop).map_err(|e| js_error(&e))
    }

    /// Embeds token-id sequences (`count` rows of `context_length` ids, flattened).
    #[wasm_bindgen(js_name = encodeTokens)]
    pub fn encode_tokens(&self, ids: Vec<u32>, count: usize) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        rows_promise(move || async move { inner.encode_tokens_async(&token_rows(&ids, count)?).await })
    }

    /// Embeds texts: a promise of one L2-normalised `Float32Array` per text.
    #[wasm_bindgen(js_name = encodeTexts)]
    pub fn encode_texts(&self, texts: Vec<String>) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        rows_promise(move || async move { inner.encode_texts_async(&texts).await })
    }

    /// Label embeddings (each label's template embeddings averaged and re-normalised): a
    /// promise of one `Float32Array` of `labels.length × embedDim` values.
    #[wasm_bindgen(js_name = labelEmbeddings)]
    pub fn label_embeddings(&self, labels: Vec<String>, templates: Vec<String>) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        compute(
            move || async move { inner.label_embeddings_async(&labels, &templates).await.map(|rows| rows.concat()) },
            |flat| Ok(Float32Array::from(flat.as_slice()).into()),
        )
    }

    /// Ranks labels for an image embedding against label embeddings (`labels.length` rows of
    /// `embedDim` values): `[{label, score}]`, best first, cut to `topK`. Plain arithmetic, run
    /// on the calling thread.
    pub fn rank(
        &self,
        image: Vec<f32>,
        labels: Vec<String>,
        embeddings: Vec<f32>,
        top_k: Option<usize>,
    ) -> Result<JsValue, JsValue> {
        self.inner.check_image_embedding(&image).map_err(|e| js_error(&e))?;
        let ranked =
            zero_shot::rank(&image, &labels, &embeddings, self.inner.logit_scale(), top_k).map_err(|e| js_error(&e))?;
        serde_wasm_bindgen::to_value(&ranked).map_err(|e| error_with_code("INTERNAL", &e.to_string()))
    }
}
