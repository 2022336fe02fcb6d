//! The crate's error type: every failure a user can cause names what was wrong.

use thiserror::Error;

/// Everything that can go wrong when loading or running a MobileCLIP model.
///
/// Each variant carries a message meant for a person; [`Error::code`] gives a stable,
/// machine-readable code (used by the JavaScript bindings as `error.code`).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The model name or config is not one this crate knows, or is inconsistent.
    #[error("unknown or invalid model: {0}")]
    UnknownModel(String),
    /// A config file or config object could not be parsed or is inconsistent.
    #[error("invalid model config: {0}")]
    Config(String),
    /// The weights file could not be parsed (truncated, corrupt, unsupported format).
    #[error("invalid weights file: {0}")]
    WeightsFormat(String),
    /// The weights parsed but do not fit the model: tensors missing, unexpected or mis-shaped.
    #[error("weights do not match the model: {0}")]
    WeightsMismatch(String),
    /// An image that cannot be encoded (zero size, wrong buffer length, undecodable file).
    #[error("invalid image: {0}")]
    Image(String),
    /// Text that cannot be encoded (for example an empty list of texts).
    #[error("invalid text: {0}")]
    Text(String),
    /// The model was loaded from a compact file without a text tower (`--towers image`).
    #[error("this model has no text tower: {0}")]
    NoTextTower(String),
    /// The model was loaded from a compact file without an image tower (`--towers text`).
    #[error("this model has no image tower: {0}")]
    NoImageTower(String),
    /// The weights' bytes do not have the digest the caller's `integrity` names.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// Any other invalid argument (an option out of range, an embedding with NaN, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Bytes that are not a label pack this crate can read (garbage, truncated, another version).
    #[error("invalid label pack: {0}")]
    LabelPackFormat(String),
    /// A label pack made by another model or other weights than the one asked to use it.
    #[error("label pack does not match the model: {0}")]
    LabelPackMismatch(String),
    /// The compute device failed (for example a GPU device lost mid-session).
    #[error("device error: {0}")]
    Device(String),
    /// No GPU could be initialised (natively, `gpu::init` with the cargo feature `wgpu`: no
    /// Vulkan / Metal / DX12 or OpenGL adapter, or its driver failed). The browser never sees
    /// it: there the package falls back to the CPU instead.
    #[error("no GPU: {0}")]
    NoGpu(String),
    /// Reading a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path that could not be read.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable, machine-readable code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownModel(_) => "UNKNOWN_MODEL",
            Error::Config(_) => "INVALID_CONFIG",
            Error::WeightsFormat(_) => "INVALID_WEIGHTS",
            Error::WeightsMismatch(_) => "WEIGHTS_MISMATCH",
            Error::Image(_) => "INVALID_IMAGE",
            Error::Text(_) => "INVALID_TEXT",
            Error::NoTextTower(_) => "NO_TEXT_TOWER",
            Error::NoImageTower(_) => "NO_IMAGE_TOWER",
            Error::Integrity(_) => "INTEGRITY_MISMATCH",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::LabelPackFormat(_) => "INVALID_LABEL_PACK",
            Error::LabelPackMismatch(_) => "LABEL_PACK_MISMATCH",
            Error::Device(_) => "DEVICE_LOST",
            Error::NoGpu(_) => "NO_GPU",
            Error::Io { .. } => "IO_ERROR",
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
