//! The browser's WebGPU device (built with the `webgpu` feature only).
//!
//! A page has one WebGPU device, initialised asynchronously by [`init_webgpu`] and shared by
//! every model of this module. When the browser loses it (driver reset, `GPUDevice.destroy()`,
//! tab backgrounded on some platforms) the JavaScript handler given to `initWebGpu` is called
//! with the reason, so the package can move the models to the CPU and re-run the pending call.

use std::cell::RefCell;

use burn::tensor::Device;
use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::wgpu::wgpu::DeviceType;
use wasm_bindgen::prelude::*;

use super::error_with_code;

thread_local! {
    /// The initialised device, or why it is unusable.
    static DEVICE: RefCell<Option<Result<Device, String>>> = const { RefCell::new(None) };
    /// Called with a message when the device is lost.
    static ON_LOST: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

/// Initialises the WebGPU device (once per module instance) and resolves to a description of
/// the adapter (its description, and whether it is a software fallback). `onLost(message)` is called if
/// the device is lost later. Rejects with code `NO_WEBGPU` when no adapter or device can be had.
#[wasm_bindgen(js_name = initWebGpu)]
pub async fn init_webgpu(on_lost: js_sys::Function) -> Result<String, JsValue> {
    if let Some(done) = DEVICE.with_borrow(Clone::clone) {
        return done.map(|_| "already initialised".into()).map_err(|e| error_with_code("NO_WEBGPU", &e));
    }
    let init = Device::wgpu_options().graphics_api(WgpuBackend::WebGpu).init_with_setup_async().await;
    let (device, setup) = match init {
        Ok(ok) => ok,
        Err(e) => {
            let message = format!("WebGPU could not be initialised: {e}");
            DEVICE.set(Some(Err(message.clone())));
            return Err(error_with_code("NO_WEBGPU", &message));
        }
    };
    ON_LOST.set(Some(on_lost));
    setup.device.set_device_lost_callback(|reason, message| {
        let text = format!("the WebGPU device was lost ({reason:?}): {message}");
        DEVICE.set(Some(Err(text.clone())));
        ON_LOST.with_borrow(|f| f.as_ref().map(|f| f.call1(&JsValue::NULL, &text.into())));
    });
    let info = setup.adapter.get_info();
    DEVICE.set(Some(Ok(device)));
    let mut description = if info.name.is_empty() { "WebGPU adapter".to_string() } else { info.name };
    if info.device_type == DeviceType::Cpu {
        description.push_str(" (fallback adapter)");
    }
    Ok(description)
}

/// The initialised WebGPU device.
pub(super) fn device() -> Result<Device, JsValue> {
    match DEVICE.with_borrow(Clone::clone) {
        Some(Ok(device)) => Ok(device),
        Some(Err(why)) => Err(error_with_code("NO_WEBGPU", &why)),
        None => Err(error_with_code("NO_WEBGPU", "WebGPU is not initialised: call initWebGpu first")),
    }
}
