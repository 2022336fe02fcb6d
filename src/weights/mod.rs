//! Reading published checkpoints: containers ([`Checkpoint`]), name mapping ([`names`]) and the
//! folding of train-time branches ([`fold`]).
//!
//! Modules are built by their config's `load` method, which takes the tensors it needs from a
//! [`Weights`] by name. Problems (missing, mis-shaped tensors) are collected rather than
//! returned one at a time, so a bad checkpoint is reported in full by [`Weights::finish`].

mod checkpoint;
mod crc32;
pub mod fold;
pub mod names;
mod pickle;

use std::collections::BTreeSet;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

pub use checkpoint::{Checkpoint, Format};

use crate::error::{Error, Result};

/// A tensor in host memory, row-major `f32`: what folding works on before upload.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    /// Uploads to `device` as a `D`-dimensional tensor (moving the values, no copy on the host).
    pub fn into_tensor<const D: usize>(self, device: &Device) -> Tensor<D> {
        assert_eq!(self.shape.len(), D, "rank mismatch when uploading a weight");
        Tensor::from_data(TensorData::new(self.data, self.shape), device)
    }

    /// Uploads to `device` as a parameter.
    pub fn into_param<const D: usize>(self, device: &Device) -> Param<Tensor<D>> {
        Param::from_tensor(self.into_tensor(device))
    }
}

/// Tensors of a checkpoint under their canonical names, with bookkeeping of what was used.
pub struct Weights {
    ckpt: Checkpoint,
    device: Device,
    used: BTreeSet<String>,
    missing: Vec<String>,
    misshaped: Vec<String>,
    problems: Vec<String>,
}

impl Weights {
    /// Wraps a checkpoint whose names are already canonical (see [`names::canonicalize`]).
    pub fn new(ckpt: Checkpoint, device: Device) -> Self {
        Self { ckpt, device, used: BTreeSet::new(), missing: Vec::new(), misshaped: Vec::new(), problems: Vec::new() }
    }

    /// The device modules are built on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.ckpt.shape(name).is_some()
    }

    /// Shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.ckpt.shape(name).map(<[usize]>::to_vec)
    }

    /// Marks a tensor as known but unused (e.g. BatchNorm's `num_batches_tracked`).
    pub fn skip(&mut self, name: &str) {
        if self.contains(name) {
            self.used.insert(name.to_string());
        }
    }

    /// Takes the tensor `name`, which must have `shape` (size-1 dimensions may differ, as in
    /// `[C, 1, 1]` layer scales or `[1, 1, L, D]` positional embeddings). A missing or mis-shaped
    /// tensor is recorded as a problem and zeros are returned, so that loading can go on and
    /// report every problem at once.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> HostTensor {
        let Some(found) = self.shape(name) else {
            self.missing.push(format!("`{name}` {shape:?}"));
            return HostTensor::zeros(shape);
        };
        self.used.insert(name.to_string());
        let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
        if found != shape && squeeze(&found) != squeeze(shape) {
            self.misshaped.push(format!("`{name}` has shape {found:?}, expected {shape:?}"));
            return HostTensor::zeros(shape);
        }
        match self.ckpt.read_f32(name) {
            Ok(data) => HostTensor { shape: shape.to_vec(), data },
            Err(e) => {
                self.problems.push(e.to_string());
                HostTensor::zeros(shape)
            }
        }
    }

    /// Takes a 1-d tensor as a plain vector.
    pub fn take_vec(&mut self, name: &str, len: usize) -> Vec<f32> {
        self.take(name, &[len]).data
    }

    /// Ends loading: an error listing the missing, mis-shaped and unexpected tensors (every
    /// tensor of the checkpoint that no module took), or `Ok` if the checkpoint fit exactly.
    pub fn finish(self) -> Result<()> {
        let unexpected: Vec<String> =
            self.ckpt.names().filter(|n| !self.used.contains(*n)).map(|n| format!("`{n}`")).collect();
        let expected = self.used.len() + self.missing.len();
        let mut parts = self.problems;
        for (what, list) in [("missing", &self.missing), ("mis-shaped", &self.misshaped), ("unexpected", &unexpected)] {
            if !list.is_empty() {
                parts.push(format!("{} {what} tensor(s): {}", list.len(), summarize(list, 8)));
            }
        }
        if parts.is_empty() {
            return Ok(());
        }
        // More than a quarter of the tensors off: not a damaged file but another model's.
        let bad = self.missing.len() + self.misshaped.len() + unexpected.len();
        let hint = if bad * 4 > expected.max(1) { " (these look like the weights of another model)" } else { "" };
        Err(Error::WeightsMismatch(format!("{}{hint}", parts.join("; "))))
    }
}

fn summarize(items: &[String], n: usize) -> String {
    let shown = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n { format!("{shown}, … ({} more)", items.len() - n) } else { shown }
}
