#!/usr/bin/env python3
"""PyTorch eager CPU rows of the side-by-side benchmark (benches/compare.mjs runs it).

For each fixture folder: the reference model, re-parameterised, timed at each thread count
(`torch.set_num_threads`): image batch 1, image batch 8, text batch 1 (median of --iters after one
warm-up) and text batch 8, each also as process CPU time per call (the mean over the timed calls:
less disturbed by other load than wall time on one thread), plus the max |Δ| of its embeddings of io.safetensors' inputs. Prints one JSON object
per (folder, threads) on stdout.

Usage: python benches/torch_eager.py DIR... --threads 1,2 [--iters 5] [--reference PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from export import REFERENCE, embedder, load_reparam, max_diff


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    args = ap.parse_args(argv)

    import torch
    from gen_fixtures import Builder
    from safetensors.torch import load_file

    torch.set_grad_enabled(False)
    builder = Builder(args.reference.resolve())
    for folder in args.dirs:
        cfg, model, _ = load_reparam(builder, folder)
        io = load_file(str(folder / "io.safetensors"))
        img = embedder(model, lambda m, x: m.encode_image(x))
        txt = embedder(model, lambda m, t: m.encode_text(t))
        pixels, tokens = io["image"], io["tokens"].long()
        px8 = pixels[torch.arange(8) % pixels.shape[0]].contiguous()
        tok8 = tokens[torch.arange(8) % tokens.shape[0]].contiguous()
        for n in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(n)

            def timed(f):
                """(median wall ms, mean process CPU ms) per call."""
                f()
                times = []
                cpu = time.process_time()
                for _ in range(args.iters):
                    t = time.perf_counter()
                    f()
                    times.append((time.perf_counter() - t) * 1e3)
                return statistics.median(times), (time.process_time() - cpu) * 1e3 / args.iters

            image, image8, text, text8 = (
                timed(lambda: img(pixels[:1])),
                timed(lambda: img(px8)),
                timed(lambda: txt(tokens[:1])),
                timed(lambda: txt(tok8)),
            )
            print(json.dumps({
                "model": cfg["name"], "threads": n, "describe": f"PyTorch {torch.__version__} eager, native",
                "image_max_diff": max_diff(img(pixels), io["image_embeddings_reparam"]),
                "text_max_diff": max_diff(txt(tokens), io["text_embeddings_reparam"]),
                "image_ms": image[0], "image8_ms": image8[0], "text_ms": text[0], "text8_ms": text8[0],
                "image_cpu_ms": image[1], "image8_cpu_ms": image8[1], "text_cpu_ms": text[1], "text8_cpu_ms": text8[1],
            }), flush=True)


if __name__ == "__main__":
    main()
