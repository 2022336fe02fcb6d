//! The wasm-bindgen adapter: the only code that knows JavaScript types. It exposes a low-level
//! `WasmModel` class; the public promise-based API (`MobileClip` in `js/index.js`) wraps it,
//! turning image sources into RGBA pixels and weights sources into bytes, and frees it on
//! `dispose()`.
//!
//! Errors reach JavaScript as `Error` objects named `MobileClipError` with a stable `code`
//! (see [`crate::Error::code`]) and a message naming what was wrong.
//!
//! The same adapter is built three times: the CPU module (burn flex, SIMD128), with the
//! `threads` feature the threaded CPU module (flex's parallel kernels on a pool of Web Workers,
//! see [`threads`]) and, with the `webgpu` feature, the WebGPU module. Loading and encoding
//! methods return promises in all three, because a WebGPU result can only be read back
//! asynchronously in a browser and the threaded module computes on its pool, not on the calling
//! thread.

use std::sync::Arc;

use js_sys::{Array, Float32Array, Promise, Reflect};
use wasm_bindgen::prelude::*;

use burn::tensor::{Device, Tensor};

use crate::preprocess::{ImageView, PixelFormat};
use crate::weights::{Checkpoint, compact};
use crate::{Error, MobileClip, ModelConfig, zero_shot};

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

/// Runs `work` and resolves to `done(its result)`: now on this thread in the single-threaded
/// modules, as a job of the thread pool in the threaded one (`done` runs on this thread).
fn call<T: Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
    done: impl FnOnce(T) -> Result<JsValue, JsValue> + 'static,
) -> Result<Promise, JsValue> {
    #[cfg(feature = "threads")]
    {
        threads::run(work, move |r| done(r.map_err(|e| js_error(&e))?))
    }
    #[cfg(not(feature = "threads"))]
    {
        let value = done(work().map_err(|e| js_error(&e))?)?;
        Ok(Promise::resolve(&value))
    }
}

/// Computes embeddings with `embed` and resolves to `done(their rows)`. The tensor is computed
/// now and read back when the device is done (WebGPU), or computed and read on the thread pool
/// (threaded module).
fn embeddings(
    embed: impl FnOnce() -> crate::Result<Tensor<2>> + Send + 'static,
    done: impl FnOnce(Vec<Vec<f32>>) -> Result<JsValue, JsValue> + 'static,
) -> Result<Promise, JsValue> {
    #[cfg(feature = "threads")]
    {
        call(move || crate::rows(embed()?), done)
    }
    #[cfg(not(feature = "threads"))]
    {
        let t = embed().map_err(|e| js_error(&e))?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            done(crate::rows_async(t).await.map_err(|e| js_error(&e))?)
        }))
    }
}

/// Resolves to one `Float32Array` per embedding.
fn rows_promise(embed: impl FnOnce() -> crate::Result<Tensor<2>> + Send + 'static) -> Result<Promise, JsValue> {
    embeddings(embed, |r| Ok(js_rows(&r)))
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The CPU backend compiled in: flex by default; ndarray with the `ndarray` feature (built only
/// to compare the two in the browser benchmark).
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
        "cpu" => Ok(cpu_device()),
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

/// The model as the adapter holds it: in the threaded module it is freed on the pool, never on
/// the calling thread.
#[cfg(feature = "threads")]
type Model = threads::DropInPool<MobileClip>;
#[cfg(not(feature = "threads"))]
type Model = MobileClip;

/// A loaded model on the CPU (burn flex, wasm SIMD128) or on WebGPU.
#[wasm_bindgen]
pub struct WasmModel {
    /// Shared with the pool jobs computing with it (threaded module).
    inner: Arc<Model>,
    backend: String,
}

#[wasm_bindgen]
impl WasmModel {
    /// Loads a model: a promise of a `WasmModel`. `model` is a shipped model name or a config
    /// as JSON text, or `undefined`: a compact file's own config then (MobileCLIP-S0 for a
    /// published checkpoint); `weights` the bytes of a published checkpoint (PyTorch zip or
    /// safetensors) or of a compact file; `backend` `"cpu"` or `"webgpu"` (after `initWebGpu`
    /// resolved); `integrity`, when given, `"sha256-<base64>"`: the bytes are checked against it
    /// before anything is parsed (`INTEGRITY_MISMATCH`).
    pub fn load(
        model: Option<String>,
        weights: Vec<u8>,
        backend: &str,
        integrity: Option<String>,
    ) -> Result<Promise, JsValue> {
        let device = device_for(backend)?;
        let config = model.as_deref().map(ModelConfig::from_name_or_json).transpose().map_err(|e| js_error(&e))?;
        let backend = backend.to_string();
        call(
            move || {
                if let Some(integrity) = &integrity {
                    compact::check_integrity(&weights, integrity)?;
                }
                let ckpt = Checkpoint::from_bytes(weights)?;
                let config = match config {
                    None if !compact::is_compact(&ckpt) => Some(ModelConfig::builtin(DEFAULT_MODEL)?),
                    given => given,
                };
                MobileClip::load_checkpoint(config, ckpt, device)
            },
            move |inner| Ok(WasmModel { inner: Arc::new(Model::from(inner)), backend }.into()),
        )
    }

    /// Which towers the model has: `"both"`, or `"image"` / `"text"` (from a one-tower compact
    /// file).
    #[wasm_bindgen(getter)]
    pub fn towers(&self) -> String {
        self.inner.towers().to_string()
    }

    /// The names of the shipped model configs.
    #[wasm_bindgen(js_name = modelNames)]
    pub fn model_names() -> Vec<String> {
        ModelConfig::builtin_names().map(String::from).collect()
    }

    /// The backend in use and why.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// Sets the backend description (the JavaScript side knows why a backend was chosen).
    #[wasm_bindgen(setter)]
    pub fn set_backend(&mut self, backend: String) {
        self.backend = backend;
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
        rows_promise(move || {
            let views = buffers
                .iter()
                .zip(widths.iter().zip(&heights))
                .map(|(b, (&w, &h))| ImageView::new(b, w, h, PixelFormat::Rgba8))
                .collect::<Result<Vec<_>, _>>()?;
            inner.embed_images(&views)
        })
    }

    /// Embeds preprocessed pixels (`count` images, CHW `f32`, as the reference's transforms
    /// produce): a promise of one L2-normalised `Float32Array` per image.
    #[wasm_bindgen(js_name = encodePixels)]
    pub fn encode_pixels(&self, pixels: Vec<f32>, count: usize) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        rows_promise(move || inner.pixels_tensor(&pixels, count).and_then(|x| inner.image_embeddings(x)))
    }

    /// Embeds token-id sequences (`count` rows of `context_length` ids, flattened).
    #[wasm_bindgen(js_name = encodeTokens)]
    pub fn encode_tokens(&self, ids: Vec<u32>, count: usize) -> Result<Promise, JsValue> {
        if count == 0 || !ids.len().is_multiple_of(count) {
            return Err(error_with_code(
                "INVALID_TEXT",
                &format!("{} ids do not split into {count} sequences", ids.len()),
            ));
        }
        let rows: Vec<Vec<u32>> = ids.chunks(ids.len() / count).map(<[u32]>::to_vec).collect();
        let inner = self.inner.clone();
        rows_promise(move || inner.tokens_tensor(&rows).and_then(|(t, eot)| inner.text_embeddings(t, &eot)))
    }

    /// Embeds texts: a promise of one L2-normalised `Float32Array` per text.
    #[wasm_bindgen(js_name = encodeTexts)]
    pub fn encode_texts(&self, texts: Vec<String>) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        rows_promise(move || inner.embed_texts(&strs(&texts)))
    }

    /// Ranks labels for an image embedding: a promise of `[{label, score}]`, best first
    /// (prompt templates averaged per label, as in CLIP).
    #[wasm_bindgen(js_name = zeroShot)]
    pub fn zero_shot(
        &self,
        image: Vec<f32>,
        labels: Vec<String>,
        templates: Vec<String>,
        top_k: Option<usize>,
    ) -> Result<Promise, JsValue> {
        self.inner.check_image_embedding(&image).map_err(|e| js_error(&e))?;
        let prompts = zero_shot::prompts(&strs(&labels), &strs(&templates)).map_err(|e| js_error(&e))?;
        let scale = self.inner.logit_scale();
        let inner = self.inner.clone();
        embeddings(
            move || inner.embed_texts(&strs(&prompts)),
            move |rows| {
                let ranked =
                    zero_shot::rank(&image, &zero_shot::ensemble(&rows, templates.len()), &strs(&labels), scale, top_k);
                serde_wasm_bindgen::to_value(&ranked).map_err(|e| error_with_code("INTERNAL", &e.to_string()))
            },
        )
    }

    /// A promise of the 77 CLIP token ids of a text.
    pub fn tokenize(&self, text: String) -> Result<Promise, JsValue> {
        let inner = self.inner.clone();
        call(move || inner.tokenizer().encode(&text), |ids| Ok(js_sys::Uint32Array::from(ids.as_slice()).into()))
    }
}
