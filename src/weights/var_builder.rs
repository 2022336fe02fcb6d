//! [`VarBuilder`]: the scoped reader modules are built through (candle's `VarBuilder` is the
//! model): `vb.pp("stages").pp(i)` names a sub-module, `vb.param("weight", [o, i])` takes a
//! tensor of [`FusedWeights`] by its full name and uploads it to the device, in the scope's
//! element type (`vb.pp("text").with_precision(TowerPrecision::F16)`: a tower computing in
//! `f16`; `vb.fused()`: the scope of parameters only this crate's fused GPU kernels read).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Display;
use std::rc::Rc;

use burn::module::Param;
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::problems::Problems;
use super::{FusedWeights, HostTensor, Towers};
use crate::error::{Error, Result};
use crate::precision::TowerPrecision;

struct Shared {
    device: Device,
    state: RefCell<State>,
}

struct State {
    weights: FusedWeights,
    /// When set, tensors are copied out as they are taken (one at a time) and the map stays
    /// whole ([`VarBuilder::checking`]); only the tensors of the towers it keeps count as
    /// unexpected when left.
    keep: Option<Towers>,
    /// Names taken so far (a tensor is moved out of the map when taken).
    taken: BTreeSet<String>,
    /// Problems of the modules' requests (the fold's own stay in `weights.problems`).
    problems: Problems,
}

/// A scope of the fused weights: names are resolved under its prefix. Cheap to clone; every
/// clone and sub-scope shares one set of books, so a model is built from one `VarBuilder` and
/// [`VarBuilder::finish`] reports everything at once.
///
/// A missing or mis-shaped tensor does not stop building: it is recorded and zeros of the
/// expected shape stand in, so that one error lists every problem.
#[derive(Clone)]
pub struct VarBuilder {
    shared: Rc<Shared>,
    prefix: String,
    /// The element type tensors are uploaded in (`f32` unless a scope says otherwise).
    dtype: DType,
    /// The element type of [`VarBuilder::fused`]'s scope.
    fused_dtype: DType,
}

impl VarBuilder {
    /// The root scope over `weights`, building on `device`.
    pub fn new(weights: FusedWeights, device: Device) -> Self {
        Self::with(State { weights, keep: None, taken: BTreeSet::new(), problems: Problems::default() }, device)
    }

    /// A root scope that builds from copies of the tensors, one at a time, leaving `weights`
    /// whole: [`VarBuilder::finish_checking`] gives it back with the verdict. Tensors that
    /// `towers` does not keep are not reported when left (another tower's, when one is checked).
    pub fn checking(weights: FusedWeights, towers: Towers, device: Device) -> Self {
        Self::with(State { weights, keep: Some(towers), taken: BTreeSet::new(), problems: Problems::default() }, device)
    }

    fn with(state: State, device: Device) -> Self {
        Self {
            shared: Rc::new(Shared { device, state: RefCell::new(state) }),
            prefix: String::new(),
            dtype: DType::F32,
            fused_dtype: DType::F32,
        }
    }

    /// The sub-scope `name` (a module name or an index), uploading in this scope's element types.
    pub fn pp(&self, name: impl Display) -> Self {
        Self { prefix: self.path(name), ..self.clone() }
    }

    /// This scope for a tower computing in `precision`: its tensors (and its sub-scopes') are
    /// uploaded as [`TowerPrecision::dtype`], those of [`Self::fused`] scopes as
    /// [`TowerPrecision::weights_dtype`].
    pub fn with_precision(&self, precision: TowerPrecision) -> Self {
        Self { dtype: precision.dtype(), fused_dtype: precision.weights_dtype(), ..self.clone() }
    }

    /// This scope for parameters that only this crate's fused GPU kernels read (every forward
    /// of the layer runs on them: the caller checks the kernel's limits at load), which read
    /// them in their own element type: uploaded as the tower's [`TowerPrecision::weights_dtype`]
    /// (`f16` in an `f32` tower computing with [`TowerPrecision::F16Weights`]). A parameter that
    /// burn's operations may take must not come from it: they need the activations' type.
    pub fn fused(&self) -> Self {
        Self { dtype: self.fused_dtype, ..self.clone() }
    }

    /// The element type this scope uploads tensors in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The full name of `name` in this scope.
    pub fn path(&self, name: impl Display) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    /// The device modules are built on.
    pub fn device(&self) -> &Device {
        &self.shared.device
    }

    /// Whether the tensor `name` exists (and is not yet taken).
    pub fn contains(&self, name: &str) -> bool {
        self.shared.state.borrow().get(&self.path(name)).is_some()
    }

    /// The shape of the tensor `name`, if it exists (and is not yet taken).
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.shared.state.borrow().get(&self.path(name)).map(|t| t.shape().to_vec())
    }

    /// Takes the tensor `name` into host memory as `f32`; it must have `shape` (size-1
    /// dimensions may differ, as in `[C, 1, 1]` layer scales or `[1, 1, L, D]` positional
    /// embeddings).
    pub fn host(&self, name: &str, shape: &[usize]) -> HostTensor {
        let full = self.path(name);
        let mut state = self.shared.state.borrow_mut();
        let found = match state.keep {
            Some(_) => state.get(&full).cloned(),
            None => state.weights.remove(&full),
        };
        if found.is_none() && state.weights.folded.contains(&full) {
            // e.g. a BatchNorm folded into the layer after it, where the model has a LayerNorm
            let expected = format!("{shape:?} (folded away: the checkpoint has another kind of layer here)");
            state.problems.missing(&full, &expected);
            return HostTensor::zeros(shape);
        }
        if !state.problems.check(&full, found.as_ref().map(|t| t.shape()), shape) {
            if found.is_some() {
                state.taken.insert(full);
            }
            return HostTensor::zeros(shape);
        }
        state.taken.insert(full);
        HostTensor { shape: shape.to_vec(), data: found.expect("checked present").into_host().data }
    }

    /// Takes the tensor `name` of `shape` onto the device.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        self.upload(self.host(name, &shape))
    }

    /// Uploads a host tensor (a weight as the model rearranged it) to the device, in this scope's
    /// element type (converted on the host).
    pub fn upload<const D: usize>(&self, t: HostTensor) -> Tensor<D> {
        assert_eq!(t.shape.len(), D, "rank mismatch when uploading a weight");
        Tensor::from_data(TensorData::new(t.data, t.shape), (self.device(), self.dtype))
    }

    /// Takes the tensor `name` of `shape` onto the device as a module parameter.
    pub fn param<const D: usize>(&self, name: &str, shape: [usize; D]) -> Param<Tensor<D>> {
        Param::from_tensor(self.tensor(name, shape))
    }

    /// Ends building: an error listing the missing, mis-shaped and unexpected tensors (every
    /// fused tensor no module took), with the problems folding met, or `Ok` if the weights fit
    /// the model exactly.
    pub fn finish(self) -> Result<()> {
        self.finish_checking().0
    }

    /// [`VarBuilder::finish`], and the weights: the whole map for a [`VarBuilder::checking`]
    /// builder, what no module took otherwise.
    pub fn finish_checking(self) -> (Result<()>, FusedWeights) {
        let state = self.shared.state.replace(State {
            weights: FusedWeights::new(),
            keep: None,
            taken: BTreeSet::new(),
            problems: Problems::default(),
        });
        let asked = state.taken.len() + state.problems.missing_count();
        let mut all = state.weights.problems.clone();
        all.append(state.problems);
        for (name, _) in state.weights.iter() {
            let left = match state.keep {
                Some(towers) => towers.keeps(name) && !state.taken.contains(name),
                None => true,
            };
            if left {
                all.unexpected(name, "");
            }
        }
        (all.into_result(asked).map_err(Error::WeightsMismatch), state.weights)
    }
}

impl State {
    /// The tensor `name` if it is there to take.
    fn get(&self, name: &str) -> Option<&super::FusedTensor> {
        self.weights.get(name).filter(|_| self.keep.is_none() || !self.taken.contains(name))
    }
}
