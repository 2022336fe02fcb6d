#!/usr/bin/env python3
"""Exports the benchmark's random-weight checkpoints for the other runtimes, from the reference.

For each folder given (written by tools/gen_fixtures.py --full: config.json, model_reparam.*,
io.safetensors), builds the reference model, loads the re-parameterised checkpoint, checks that
it reproduces io.safetensors, and writes next to it:

    image.onnx, image_b8.onnx, text.onnx
                              ONNX opset 17 (onnxruntime-web)
    image.tflite, image_b8.tflite, text.tflite
                              LiteRT (LiteRT.js), converted with litert-torch; int32 token ids

Both with static shapes: batch 1, and batch 8 for the gallery column (image_b8); L2-normalised
embeddings out, as mobileclip-wasm returns them.

The text encoder pools at the end-of-text token, `argmax` of the ids. litert-torch cannot
legalize an int64 argmax, so for LiteRT it is taken over the ids cast to float32 (exact for ids
below 2^24; CLIP's vocabulary has 49408).

Runs in the bench's venv (tools/setup-bench-venv.sh): the reference venv's torch + onnx +
litert-torch. Files are rewritten only when their checkpoint is newer.

Usage: python benches/export.py DIR... [--reference PATH] [--no-tflite]   (--reference: see REFERENCE)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
# Apple's reference checkout, as tools/gen_fixtures.py finds it ($MOBILECLIP_REFERENCE overrides)
REFERENCE = Path(os.environ.get("MOBILECLIP_REFERENCE", REPO.parent / "shared" / "reference" / "ml-mobileclip"))


def log(*a):
    print("[export]", *a, file=sys.stderr, flush=True)


def embedder(model, encode):
    """The module `x -> normalize(encode(model, x))`: embeddings as mobileclip-wasm returns them."""
    import torch
    import torch.nn.functional as F

    class Embedder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return F.normalize(encode(self.model, x), dim=-1)

    return Embedder().eval()


@contextlib.contextmanager
def float_argmax():
    """Makes `Tensor.argmax` of integer tensors an argmax over their float32 cast (LiteRT)."""
    import torch
    orig = torch.Tensor.argmax

    def argmax(self, *a, **k):
        return orig(self if self.is_floating_point() else self.to(torch.float32), *a, **k)

    torch.Tensor.argmax = argmax
    try:
        yield
    finally:
        torch.Tensor.argmax = orig


def load_reparam(builder, folder: Path):
    import torch
    from safetensors.torch import load_file

    cfg = json.loads((folder / "config.json").read_text())
    cfg["_base"] = cfg.get("fixture", {}).get("base", cfg["name"])
    model = builder.reparameterize(builder.build(cfg))
    pt, st = folder / "model_reparam.pt", folder / "model_reparam.safetensors"
    ckpt = pt if pt.exists() else st
    sd = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt == pt else load_file(str(ckpt))
    model.load_state_dict(sd)
    return cfg, model.eval(), ckpt


def max_diff(a, b):
    return float((a - b).abs().max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    ap.add_argument("--no-tflite", action="store_true", help="ONNX only")
    args = ap.parse_args(argv)

    import torch
    from gen_fixtures import Builder
    from safetensors.torch import load_file

    torch.set_grad_enabled(False)
    # nn.MultiheadAttention's inference fast path (open_clip's text encoder) exports to neither format
    torch.backends.mha.set_fastpath_enabled(False)
    builder = Builder(args.reference.resolve())

    for folder in args.dirs:
        cfg, model, ckpt = load_reparam(builder, folder)
        io = load_file(str(folder / "io.safetensors"))
        size = (cfg.get("image_cfg") or cfg["vision_cfg"])["image_size"]
        img = embedder(model, lambda m, x: m.encode_image(x))
        txt = embedder(model, lambda m, t: m.encode_text(t))
        pixels, tokens = io["image"], io["tokens"].long()
        di = max_diff(img(pixels), io["image_embeddings_reparam"])
        dt = max_diff(txt(tokens), io["text_embeddings_reparam"])
        log(f"{cfg['name']}: reference re-loaded, max |Δ| image {di:.1e}, text {dt:.1e}")
        assert di < 1e-5 and dt < 1e-5, "the re-parameterised checkpoint does not reproduce io.safetensors"
        stale = lambda f: not f.exists() or f.stat().st_mtime < ckpt.stat().st_mtime  # noqa: E731

        # static shapes for both runtimes (the reference's SE blocks pool with a kernel the size
        # of their input, which the ONNX exporter cannot leave dynamic)
        graphs = {  # file stem: (module, example input)
            "image": (img, torch.zeros(1, 3, size, size)),
            "image_b8": (img, torch.zeros(8, 3, size, size)),
            "text": (txt, torch.zeros(1, 77, dtype=torch.long)),
        }
        for stem, (module, x) in graphs.items():
            t = time.time()
            if stale(out := folder / f"{stem}.onnx"):
                torch.onnx.export(module, (x,), str(out), opset_version=17, dynamo=False,
                                  input_names=["tokens" if stem == "text" else "pixels"], output_names=["embeddings"])
                log(f"{cfg['name']}: {out.name} written in {time.time() - t:.0f} s")
            t = time.time()
            if not args.no_tflite and stale(out := folder / f"{stem}.tflite"):
                import litert_torch
                if stem == "text":
                    with float_argmax():
                        litert_torch.convert(module, (x.to(torch.int32),)).export(str(out))
                else:
                    litert_torch.convert(module, (x,)).export(str(out))
                log(f"{cfg['name']}: {out.name} written in {time.time() - t:.0f} s")

if __name__ == "__main__":
    main()
