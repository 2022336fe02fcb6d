//! Native GPUs (cargo feature `wgpu`): burn-wgpu with kernel fusion, on whichever API wgpu picks
//! for the platform (Vulkan, Metal, DX12; OpenGL where none of those has an adapter).
//!
//! ```no_run
//! use mobileclip_wasm::{MobileClip, ModelConfig, gpu};
//! let gpu = gpu::init()?;
//! println!("{}", gpu.adapter);
//! let model = MobileClip::from_file(ModelConfig::builtin("MobileCLIP-S0")?, "mobileclip_s0.pt".as_ref(), gpu.device.clone())?;
//! # Ok::<(), mobileclip_wasm::Error>(())
//! ```

use std::sync::OnceLock;

use burn::tensor::Device;
use burn::tensor::wgpu::wgpu::{DeviceType, Features};

use crate::{Error, Result};

/// An initialised GPU.
#[derive(Clone, Debug)]
pub struct Gpu {
    /// The device to load models onto.
    pub device: Device,
    /// The adapter's name, graphics API and kind, e.g. `"NVIDIA GeForce RTX 3060 (Vulkan, discrete GPU)"`.
    pub adapter: String,
    /// Whether the adapter is a CPU implementation (Mesa's lavapipe, SwiftShader, WARP): correct,
    /// but slower than the CPU backend.
    pub software: bool,
    /// Whether the adapter offers 16-bit floats in shaders (`shader-f16`).
    pub shader_f16: bool,
}

static GPU: OnceLock<std::result::Result<Gpu, String>> = OnceLock::new();

/// Initialises wgpu's default adapter (a high-performance GPU where there is one; the
/// `CUBECL_WGPU_DEFAULT_DEVICE` environment variable overrides the choice, e.g.
/// `IntegratedGpu(0)` or `Cpu`), once per process: later calls return the same device.
///
/// # Errors
///
/// [`Error::NoGpu`] (`NO_GPU`) when wgpu finds no adapter or cannot open it (for example a
/// machine without a Vulkan driver): the same error on every later call.
pub fn init() -> Result<Gpu> {
    GPU.get_or_init(|| {
        let (device, setup) = Device::wgpu_options().init_with_setup().map_err(|e| {
            format!("no GPU adapter could be initialised through wgpu (Vulkan / Metal / DX12, or OpenGL): {e}")
        })?;
        let info = setup.adapter.get_info();
        let shader_f16 = setup.device.features().contains(Features::SHADER_F16);
        let kind = match info.device_type {
            DeviceType::DiscreteGpu => "discrete GPU",
            DeviceType::IntegratedGpu => "integrated GPU",
            DeviceType::VirtualGpu => "virtual GPU",
            DeviceType::Cpu => "software rasteriser on the CPU",
            DeviceType::Other => "other adapter",
        };
        Ok(Gpu {
            device,
            adapter: format!("{} ({:?}, {kind})", info.name, info.backend),
            software: info.device_type == DeviceType::Cpu,
            shader_f16,
        })
    })
    .clone()
    .map_err(Error::NoGpu)
}

/// GPU kernel launches (one compute dispatch each), counted per kernel name.
#[derive(Clone, Debug, Default)]
pub struct Launches {
    /// Launches per kernel name, in first-launch order.
    pub by_kernel: Vec<(&'static str, usize)>,
}

impl Launches {
    /// All launches.
    pub fn total(&self) -> usize {
        self.by_kernel.iter().map(|(_, n)| n).sum()
    }
}

struct Counter(std::sync::Mutex<Vec<(&'static str, usize)>>);

impl cubecl::logging::LaunchObserver for Counter {
    fn launched(&self, kernel: &'static str) {
        let mut v = self.0.lock().expect("counter lock");
        match v.iter_mut().find(|(k, _)| *k == kernel) {
            Some((_, n)) => *n += 1,
            None => v.push((kernel, 1)),
        }
    }
}

/// Runs `f` and counts the GPU kernels it launches (include the read-back of the results in
/// `f`: with kernel fusion, work is launched when its results are needed). Process-wide: launches
/// from other threads in the meantime are counted too.
pub fn count_launches<T>(f: impl FnOnce() -> T) -> (T, Launches) {
    let counter = std::sync::Arc::new(Counter(Default::default()));
    let observation = cubecl::logging::LaunchObservation::new(counter.clone());
    let out = f();
    drop(observation);
    let by_kernel = counter.0.lock().expect("counter lock").clone();
    (out, Launches { by_kernel })
}
