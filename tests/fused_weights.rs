//! The fused map is everything a model is built from: written to safetensors and read back
//! tensor by tensor (what a compact model file does), it builds the same model, bit for bit,
//! and it holds no train-time tensor.

mod common;
use common::*;

use burn::tensor::Device;
use mobileclip_wasm::weights::{
    Checkpoint, FusedTensor, FusedWeights, Storage, config_for_checkpoint, fuse_checkpoint,
};
use mobileclip_wasm::{MobileClip, ModelConfig, weights_id};

/// The map as safetensors bytes (f32, little-endian), and back.
fn round_trip(fused: &FusedWeights) -> FusedWeights {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = fused
        .iter()
        .map(|(name, t)| {
            let Storage::F32(values) = t.storage() else { panic!("folding makes f32 tensors") };
            (name.to_string(), t.shape().to_vec(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut back = FusedWeights::new();
    for (name, view) in st.tensors() {
        let values = view.data().chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert!(back.insert(name, FusedTensor::f32(view.shape().to_vec(), values)).is_none());
    }
    back
}

const TRAIN_TIME: &[&str] = [
    ".conv_kxk.",
    ".conv_scale.",
    ".identity.",
    ".mixer.",
    ".large_conv.",
    ".small_conv.",
    ".pos_enc.",
    ".bn.",
    "running_",
    "layer_scale",
    "num_batches_tracked",
]
.as_slice();

#[test]
fn fused_map_written_and_read_back_builds_the_same_model() {
    let mut checked = 0;
    for dir in std::fs::read_dir(fixtures_root()).unwrap().map(|e| e.unwrap().path()) {
        let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let io = read_io(&dir);
        for file in ["model.pt", "model.safetensors", "model_reparam.pt", "model_reparam.safetensors"] {
            let Ok(bytes) = std::fs::read(dir.join(file)) else { continue };
            let direct = MobileClip::from_bytes(config.clone(), bytes.clone(), Device::flex()).unwrap();
            let id = weights_id(&bytes);
            let ckpt = Checkpoint::from_bytes(bytes).unwrap();
            // a v1 model's open_clip-layout file is described by its open_clip config, as the library does
            let config = config_for_checkpoint(&ckpt, &config).unwrap();
            let arch = config.resolve().unwrap();
            let fused = fuse_checkpoint(ckpt, &config, &arch).unwrap();
            assert!(!fused.has_problems());
            for (name, _) in fused.iter() {
                assert!(
                    !TRAIN_TIME.iter().any(|t| name.contains(t)),
                    "{}/{file}: train-time tensor `{name}` in the fused map",
                    dir.display()
                );
            }
            let rebuilt = MobileClip::from_fused(config.clone(), round_trip(&fused), id, Device::flex()).unwrap();
            let same = |a: Vec<Vec<f32>>, b: Vec<Vec<f32>>| {
                a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| x.to_bits() == y.to_bits())
                    && a.len() == b.len()
            };
            let image = |m: &MobileClip| m.encode_pixels(&io.image, io.n_images).unwrap();
            let text = |m: &MobileClip| m.encode_tokens(&io.tokens).unwrap();
            assert!(same(image(&direct), image(&rebuilt)), "{}/{file}: image embeddings differ", dir.display());
            assert!(same(text(&direct), text(&rebuilt)), "{}/{file}: text embeddings differ", dir.display());
            assert_eq!(direct.logit_scale().to_bits(), rebuilt.logit_scale().to_bits());
            assert_eq!(direct.weights_id(), rebuilt.weights_id());
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} checkpoints found");
}

#[test]
fn a_fused_map_missing_a_tensor_is_refused_by_name() {
    let dir = fixtures_root().join("v2-mci0");
    let config = ModelConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let arch = config.resolve().unwrap();
    let ckpt = Checkpoint::from_bytes(std::fs::read(dir.join("model.safetensors")).unwrap()).unwrap();
    let mut fused = fuse_checkpoint(ckpt, &config, &arch).unwrap();
    let gone = "visual.stages.0.blocks.0.token_mixer.reparam_conv.weight";
    let shape = fused.remove(gone).unwrap().shape().to_vec();
    let e = MobileClip::from_fused(config.clone(), fused.clone(), String::new(), Device::flex()).unwrap_err();
    assert_eq!(e.code(), "WEIGHTS_MISMATCH");
    assert!(e.to_string().contains(&format!("1 missing tensor(s): `{gone}` {shape:?}")), "{e}");
    fused.insert("visual.extra", FusedTensor::f32(vec![2], vec![0.0, 1.0]));
    let e = MobileClip::from_fused(config, fused, String::new(), Device::flex()).unwrap_err();
    assert!(e.to_string().contains("1 unexpected tensor(s): `visual.extra`"), "{e}");
}
