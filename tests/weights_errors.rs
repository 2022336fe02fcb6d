//! Bad weights give clear errors naming what is wrong, never a panic, and loading keeps working
//! afterwards.

mod common;
use common::{fixtures_root, hostile};

use burn::tensor::Device;
use mobileclip_wasm::weights::{ConvertOptions, Towers};
use mobileclip_wasm::{Error, MobileClip, ModelConfig};

fn config(name: &str) -> ModelConfig {
    ModelConfig::from_json(&std::fs::read_to_string(fixtures_root().join(name).join("config.json")).unwrap()).unwrap()
}

fn bytes(name: &str, file: &str) -> Vec<u8> {
    std::fs::read(fixtures_root().join(name).join(file)).unwrap()
}

fn load(cfg: &str, b: Vec<u8>) -> Result<MobileClip, Error> {
    MobileClip::from_bytes(config(cfg), b, Device::flex())
}

/// Rewrites a safetensors checkpoint through `edit` (name, shape, f32 values) → kept tensors;
/// non-f32 tensors (BatchNorm counters) are kept as they are.
fn rewrite(b: &[u8], edit: impl Fn(&str, Vec<usize>, Vec<f32>) -> Option<(String, Vec<usize>, Vec<f32>)>) -> Vec<u8> {
    let st = safetensors::SafeTensors::deserialize(b).unwrap();
    let mut kept: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            kept.push((name.to_string(), view.dtype(), view.shape().to_vec(), view.data().to_vec()));
            continue;
        }
        let vals = view.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        if let Some((n, shape, v)) = edit(&name, view.shape().to_vec(), vals) {
            kept.push((n, safetensors::Dtype::F32, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, t, s, d)| (n.clone(), safetensors::tensor::TensorView::new(*t, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn empty_file() {
    let e = load("v2-mci0", Vec::new()).unwrap_err();
    assert_eq!(e.code(), "INVALID_WEIGHTS");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn not_a_checkpoint() {
    let e = load("v2-mci0", b"<html>404 not found</html>".to_vec()).unwrap_err();
    assert_eq!(e.code(), "INVALID_WEIGHTS");
    assert!(e.to_string().contains("expected a PyTorch zip checkpoint"), "{e}");
}

#[test]
fn truncated_pytorch_zip() {
    for cut in [10, 1000] {
        let mut b = bytes("v1-mci-mct", "model.pt");
        b.truncate(b.len() - cut);
        let e = load("v1-mci-mct", b).unwrap_err();
        assert_eq!(e.code(), "INVALID_WEIGHTS", "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    let mut b = bytes("v1-mci-mct", "model.pt");
    b.truncate(b.len() / 2);
    assert_eq!(load("v1-mci-mct", b).unwrap_err().code(), "INVALID_WEIGHTS");
}

#[test]
fn truncated_safetensors() {
    let mut b = bytes("v2-mci0", "model.safetensors");
    b.truncate(b.len() - 100);
    let e = load("v2-mci0", b).unwrap_err();
    assert_eq!(e.code(), "INVALID_WEIGHTS");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn weights_of_another_model_are_listed() {
    // v2-mci0 weights with the v2-mci3 config: stage count, norms and widths all differ.
    let e = load("v2-mci3", bytes("v2-mci0", "model.safetensors")).unwrap_err();
    assert_eq!(e.code(), "WEIGHTS_MISMATCH");
    let msg = e.to_string();
    assert!(msg.contains("missing tensor(s): `"), "{msg}");
    assert!(msg.contains("`visual.stages.4.downsample.proj.0.reparam_conv.weight` [64, 1, 7, 7]"), "{msg}");
    // mci0's BatchNorm (folded into qkv) where mci3 has a LayerNorm
    assert!(msg.contains("`visual.stages.3.blocks.0.norm.weight` [32] (folded away"), "{msg}");
    assert!(msg.contains("mis-shaped tensor(s): `visual.stages.0.blocks.0.mlp.fc1.weight` has shape [24, 8, 1, 1], expected [16, 8, 1, 1]"), "{msg}");
    assert!(msg.contains("weights of another model"), "{msg}");
    // v1 weights under a v2 config: the layouts differ.
    let e = load("v2-mci0", bytes("v1-mci-mct", "model.pt")).unwrap_err();
    assert_eq!(e.code(), "WEIGHTS_MISMATCH");
    assert!(e.to_string().contains("the checkpoint is in Apple's MobileCLIP v1 layout"), "{e}");
    assert!(e.to_string().contains("another model"), "{e}");
}

#[test]
fn a_v1_model_in_open_clips_layout_checks_its_tensors_too() {
    // The layout is recognised and open_clip's description of the model taken; another model's
    // file in that layout is still another model's.
    let e = load("openclip-s1", bytes("openclip-s2", "model.safetensors")).unwrap_err();
    assert_eq!(e.code(), "WEIGHTS_MISMATCH");
    assert!(e.to_string().contains("mis-shaped tensor(s): `visual.stem.0"), "{e}");
    assert!(e.to_string().contains("weights of another model"), "{e}");
    let e = load("openclip-b", bytes("v2-mci0", "model.safetensors")).unwrap_err();
    assert_eq!(e.code(), "WEIGHTS_MISMATCH");
    assert!(e.to_string().contains("weights of another model"), "{e}");
    // A v1 model not published in open_clip's layout refuses it by its layout.
    let e = load("v1-mci-mct", bytes("openclip-s1", "model.safetensors")).unwrap_err();
    assert_eq!(e.code(), "WEIGHTS_MISMATCH");
    assert!(e.to_string().contains("the checkpoint is in open_clip's layout"), "{e}");
    assert!(e.to_string().contains("expects Apple's MobileCLIP v1 layout"), "{e}");
    // The model keeps its own layout: the fixture's config with the open_clip file loads.
    let clip = load("openclip-s1", bytes("openclip-s1", "model.safetensors")).unwrap();
    assert_eq!(clip.config().family, mobileclip_wasm::config::Family::OpenClip);
    assert_eq!(clip.config().name, "openclip-s1");
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let good = bytes("v2-mci0", "model.safetensors");
    let gone = "visual.trunk.final_conv.se.fc2.bias";
    let b = rewrite(&good, |n, s, v| (n != gone).then(|| (n.to_string(), s, v)));
    let e = load("v2-mci0", b).unwrap_err();
    assert_eq!(e.code(), "WEIGHTS_MISMATCH");
    assert!(
        e.to_string()
            .starts_with("weights do not match the model: 1 missing tensor(s): `visual.final_conv.se.fc2.bias` ["),
        "{e}"
    );
    assert!(!e.to_string().contains("another model"), "{e}");

    let b = rewrite(&good, |n, s, v| {
        if n == "text.ln_final.weight" {
            Some((n.to_string(), vec![s[0] - 1], v[1..].to_vec()))
        } else {
            Some((n.to_string(), s, v))
        }
    });
    let e = load("v2-mci0", b).unwrap_err();
    assert!(e.to_string().contains("`text.ln_final.weight` has shape"), "{e}");

    let b = rewrite(&good, |n, s, v| {
        let renamed = if n == "text.ln_final.bias" { "text.ln_final.bias_typo".to_string() } else { n.to_string() };
        Some((renamed, s, v))
    });
    let e = load("v2-mci0", b).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("1 missing tensor(s): `text.ln_final.bias`"), "{msg}");
    assert!(msg.contains("1 unexpected tensor(s): `text.ln_final.bias_typo`"), "{msg}");

    // The rewrite itself is faithful: unchanged tensors load.
    assert!(load("v2-mci0", rewrite(&good, |n, s, v| Some((n.to_string(), s, v)))).is_ok());
}

/// The case: 4 KB of random bytes in the middle of a published .pt's tensor data.
#[test]
fn corrupted_pytorch_zip_names_the_entry() {
    let good = bytes("v1-mci-mct", "model.pt");
    let mid = good.len() / 2;
    let entry = hostile::entry_at(&good, mid).expect("tensor data in the middle of the file");
    assert!(entry.contains("/data/"), "{entry}");
    let mut b = good.clone();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for byte in &mut b[mid - 2048..mid + 2048] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let e = load("v1-mci-mct", b).unwrap_err();
    assert_eq!(e.code(), "INVALID_WEIGHTS");
    assert!(e.to_string().contains(&format!("zip entry `{entry}` is corrupted (its CRC-32 is")), "{e}");

    // One flipped bit in any entry (the pickle, the storages, the version record) is caught too.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(good.as_slice())).unwrap();
    let ranges: Vec<(String, usize, usize)> = (0..archive.len())
        .map(|i| {
            let f = archive.by_index_raw(i).unwrap();
            (f.name().unwrap().into_owned(), f.data_start().unwrap() as usize, f.compressed_size() as usize)
        })
        .collect();
    assert!(ranges.len() > 100);
    for (name, start, len) in ranges.into_iter().filter(|r| r.2 > 0) {
        let mut b = good.clone();
        b[start + len / 2] ^= 0x10;
        let e = load("v1-mci-mct", b).unwrap_err();
        assert!(e.to_string().contains(&format!("zip entry `{name}` is corrupted")), "{name}: {e}");
    }
    assert!(load("v1-mci-mct", good).is_ok());
}

/// Pathological pickles, tensor views and safetensors headers (tests/common/hostile.rs): each is
/// invalid weights with a message naming the problem, and loading works afterwards. Their time
/// and memory bounds are checked in tests/fuzz_readers.rs, which counts allocations.
#[test]
fn hostile_checkpoints_are_invalid_weights() {
    let cases = hostile::cases(&bytes("v1-mci-mct", "model.pt"));
    assert!(cases.len() > 30);
    for case in cases {
        let e = load("v1-mci-mct", case.bytes).unwrap_err();
        assert_eq!(e.code(), "INVALID_WEIGHTS", "{}: {e}", case.name);
        assert!(e.to_string().contains(case.error), "{}: {e}", case.name);
    }
    assert!(load("v1-mci-mct", bytes("v1-mci-mct", "model.pt")).is_ok());
}

#[test]
fn train_time_branches_are_checked_while_folding() {
    let good = bytes("v2-mci0", "model.safetensors");
    // The error of loading `good` with the tensor `name` of the stem's first block changed by
    // `edit` (shape, values) → replacement, or removed; converting it to a compact file fails
    // with the same error (the folding's problems travel through the conversion).
    type Tensor = (Vec<usize>, Vec<f32>);
    let err = |name: &str, edit: &dyn Fn(Vec<usize>, Vec<f32>) -> Option<Tensor>| {
        let name = format!("visual.trunk.stem.0.{name}");
        let b = rewrite(&good, |n, s, v| {
            if n == name { edit(s, v).map(|(s, v)| (n.to_string(), s, v)) } else { Some((n.to_string(), s, v)) }
        });
        let options = ConvertOptions { towers: Towers::Image, ..Default::default() };
        let converted = MobileClip::convert(&config("v2-mci0"), b.clone(), &options).unwrap_err();
        let e = load("v2-mci0", b).unwrap_err();
        assert_eq!(e.code(), "WEIGHTS_MISMATCH");
        assert_eq!((converted.code(), converted.to_string()), (e.code(), e.to_string()), "convert vs load");
        e.to_string()
    };
    // A BatchNorm statistic of a branch: named with the shape the branch needs.
    let msg = err("conv_kxk.0.bn.running_var", &|_, _| None);
    assert!(msg.contains("1 missing tensor(s): `visual.stem.0.conv_kxk.0.bn.running_var` [8]"), "{msg}");
    // A 1×1 branch that is not 1×1.
    let msg = err("conv_scale.conv.weight", &|s, v| Some((vec![s[0], s[1], 3, 3], v.repeat(9))));
    let expected = "`visual.stem.0.conv_scale.conv.weight` has shape [8, 3, 3, 3], expected [8, 3, 1, 1]";
    assert!(msg.contains(expected), "{msg}");
    // Hostile shapes: a kernel that is not 4-d, an even kernel to centre a 1×1 branch in.
    let msg = err("conv_kxk.0.conv.weight", &|s, v| Some((vec![s[0], s[1] * 9], v)));
    let expected = "`visual.stem.0.conv_kxk.0.conv.weight` has shape [8, 27], expected a 4-d convolution kernel";
    assert!(msg.contains(expected), "{msg}");
    let msg = err("conv_kxk.0.conv.weight", &|s, v| Some((vec![s[0], s[1], 2, 2], v[..v.len() / 9 * 4].to_vec())));
    assert!(msg.contains("expected an odd kernel"), "{msg}");
}

#[test]
fn loading_works_after_errors() {
    assert!(load("v2-mci0", vec![1, 2, 3]).is_err());
    assert!(load("v2-mci3", bytes("v2-mci0", "model.safetensors")).is_err());
    let m = load("v2-mci0", bytes("v2-mci0", "model.safetensors")).unwrap();
    assert_eq!(m.embed_dim(), config("v2-mci0").embed_dim);
}

#[test]
fn bad_inputs_to_a_loaded_model() {
    let m = load("v2-mci0", bytes("v2-mci0", "model.safetensors")).unwrap();
    let e = m.encode_pixels(&[0.0; 10], 1).unwrap_err();
    assert_eq!(e.code(), "INVALID_IMAGE");
    assert!(e.to_string().contains("3x"), "{e}");
    let e = m.encode_tokens(&[]).unwrap_err();
    assert_eq!(e.code(), "INVALID_TEXT");
    let e = m.encode_tokens(&[vec![0; 5]]).unwrap_err();
    assert!(e.to_string().contains("expected 77"), "{e}");
    let mut ids = vec![0u32; 77];
    ids[3] = 1_000_000;
    let e = m.encode_tokens(&[ids]).unwrap_err();
    assert!(e.to_string().contains("outside the vocabulary"), "{e}");
    // and the model still works
    let s = m.config().preprocess.image_size;
    assert_eq!(m.encode_pixels(&vec![0.5; 3 * s * s], 1).unwrap().len(), 1);
}

/// Weights streamed in chunks of every awkward size (a byte, a few, a page and a bit: headers,
/// elements, data descriptors split between chunks) load to the same embeddings as the bytes at
/// once, with the same weights id; a stream that ends early names the tensor or zip entry.
#[test]
fn streamed_weights_load_as_the_bytes_do() {
    use mobileclip_wasm::weights::WeightsReader;
    let stream = |b: &[u8], sizes: &[usize]| {
        let mut reader = WeightsReader::new();
        let (mut at, mut i) = (0, 0);
        while at < b.len() {
            let n = sizes[i % sizes.len()].min(b.len() - at);
            reader.push(&b[at..at + n])?;
            at += n;
            i += 1;
        }
        Ok::<_, Error>(reader)
    };
    let compact = std::fs::read(fixtures_root().join("../compact/v2-mci0-f32.safetensors")).unwrap();
    let cases = [
        ("v1-mci-mct", bytes("v1-mci-mct", "model.pt")),
        ("v2-mci0", bytes("v2-mci0", "model.safetensors")),
        ("v2-mci0", compact),
    ];
    for (model, b) in cases {
        let io = common::read_io(&fixtures_root().join(model));
        let whole = load(model, b.clone()).unwrap();
        let want = (whole.encode_pixels(&io.image, io.n_images).unwrap(), whole.encode_tokens(&io.tokens).unwrap());
        for sizes in [&[1, 7, 4099][..], &[65536]] {
            let streamed =
                MobileClip::load_stream(Some(config(model)), stream(&b, sizes).unwrap(), None, Device::flex()).unwrap();
            assert_eq!(streamed.weights_id(), whole.weights_id());
            let got =
                (streamed.encode_pixels(&io.image, io.n_images).unwrap(), streamed.encode_tokens(&io.tokens).unwrap());
            assert!(got == want, "{model} in chunks of {sizes:?}");
        }
    }
    let pt = bytes("v1-mci-mct", "model.pt");
    let e = stream(&pt[..pt.len() / 2], &[5000]).unwrap().finish().unwrap_err();
    assert_eq!(e.code(), "INVALID_WEIGHTS");
    assert!(e.to_string().contains("the file ends inside zip entry `") && e.to_string().contains("/data/"), "{e}");
    let st = bytes("v2-mci0", "model.safetensors");
    let e = stream(&st[..st.len() - 100], &[5000]).unwrap().finish().unwrap_err();
    assert!(e.to_string().contains("the file ends inside tensor `"), "{e}");
}
