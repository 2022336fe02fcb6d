#!/usr/bin/env python3
"""Generate the image-preprocessing fixtures used by tests/preprocess.rs.

Run from anywhere with the reference venv (torch, torchvision, Pillow, open_clip, scikit-image):

    .venv-ref/bin/python tools/gen_preprocess_fixtures.py

It writes into tests/fixtures/preprocess/:

* input images (PNG, lossless so Rust decodes the very same pixels), cut or scaled from the
  free-licence sample photos shipped with scikit-image, plus one synthetic pattern;
* JPEG inputs written by Pillow (baseline and progressive, 4:2:0 / 4:2:2 / 4:4:4 chroma,
  grayscale, CMYK, an EXIF orientation, odd sizes) with what Pillow (its bundled libjpeg-turbo)
  decodes them to, `Image.open(f).convert("RGB")`, as PNG (`decoded_*.png`): the CLI must decode
  JPEG bit-exactly as the reference does;
* for every input and every distinct (image_size, interpolation) of the MobileCLIP models, the
  uint8 image after the reference Resize + CenterCrop (PNG, `crop_*.png`);
* for every reference pipeline, a 3 x 256 float32 lookup table (`lut_*.f32`, little endian):
  the value the pipeline's ToTensor (+ Normalize) gives to each uint8 value of each channel.
  The script asserts that every real pipeline output equals LUT[channel][cropped uint8 pixel]
  bit for bit, so crop PNG + LUT is a lossless encoding of the reference tensors;
* Pillow `Image.resize` outputs at arbitrary sizes and torchvision `CenterCrop` outputs with
  padding (`resize_*.png`, `center_crop_*.png`);
* manifest.json describing all of it, plus torchvision's resize/crop geometry for many sizes.

The pipelines are the real ones: MobileCLIP v1's `mobileclip.create_model_and_transforms`
(from the ml-mobileclip reference checkout; set MOBILECLIP_REF to override its location) and
open_clip's `create_model_and_transforms` with each MobileCLIP2 model's `dfndr2b` pretrained
preprocessing config (mean, std, interpolation, resize_mode; no weights are downloaded).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "preprocess"
REF = Path(os.environ.get("MOBILECLIP_REF", ROOT.parent / "shared" / "reference" / "ml-mobileclip"))


# Cropped results not stored, to keep the fixtures small (the pipelines still run and are
# checked above; the same sizes and filters are covered by the other images).
UNSTORED_CROPS = {
    ("chelsea_301x217", 224, "bilinear"),
    ("astronaut_256x256", 224, "bilinear"),
    ("camera_gray_173x139", 224, "bilinear"),
    ("pattern_1501x1001", 224, "bilinear"),
    ("coffee_97x255", 224, "bilinear"),
    ("astronaut_rgba_123x187", 224, "bilinear"),
    ("cells_260x601", 224, "bilinear"),
    ("noise_60x60", 256, "bilinear"),
    ("noise_60x60", 224, "bilinear"),
    ("noise_60x60", 224, "bicubic"),
}


def dumps(manifest: dict) -> str:
    """JSON with one list item per line."""
    parts = []
    for key, value in manifest.items():
        if isinstance(value, list):
            body = ",\n  ".join(json.dumps(v) for v in value)
            parts.append(f"{json.dumps(key)}: [\n  {body}\n ]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def save_png(img: Image.Image, name: str) -> str:
    img.save(OUT / name, format="PNG", optimize=True, compress_level=9)
    return name


# ------------------------------------------------------------------------------------------
# Input images.


def make_inputs() -> list[dict]:
    chelsea = Image.fromarray(skdata.chelsea())  # 451x300
    coffee = Image.fromarray(skdata.coffee())  # 600x400
    astronaut = Image.fromarray(skdata.astronaut())  # 512x512
    rocket = Image.fromarray(skdata.rocket())  # 640x427
    camera = Image.fromarray(skdata.camera())  # 512x512, grayscale

    rgba = np.array(astronaut.crop((150, 20, 273, 207)))  # 123x187
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (xx * 255 // (w - 1)).astype(np.uint8)  # horizontal ramp 0..255
    alpha[: h // 4] = 0  # a fully transparent band whose colours must still be used
    alpha[h // 2 : h // 2 + 20] = 255
    rgba = np.dstack([rgba, alpha])

    # Sharp-edged saturated pattern (three checkerboards of different periods, one per
    # channel): bicubic over/undershoots at every edge, exercising the clipping, and the large
    # downscale factor widens the filter support. Flat colours keep the PNG small.
    ph, pw = 1001, 1501
    yy, xx = np.mgrid[0:ph, 0:pw]
    pattern = np.stack(
        [
            ((xx // 7 + yy // 5) % 2) * 255,
            ((xx // 23 + yy // 31) % 2) * 255,
            ((xx // 61 + yy // 43) % 2) * 200 + 20,
        ],
        axis=-1,
    ).astype(np.uint8)

    def cells(w: int, h: int) -> Image.Image:
        """Flat-colour cells of three periods plus diagonal stripes (small as PNG)."""
        yy, xx = np.mgrid[0:h, 0:w]
        return Image.fromarray(
            np.stack(
                [
                    ((xx // 11 + yy // 17) % 2) * 230 + 10,
                    ((xx // 29 + yy // 23) % 3) * 110,
                    (((xx + yy) // 9) % 2) * 255,
                ],
                axis=-1,
            ).astype(np.uint8)
        )

    # Uniform random noise: makes any difference in Pillow's pass order visible.
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 60, 3), dtype=np.uint8))

    images = [
        ("chelsea_301x217", chelsea.crop((75, 40, 376, 257)), "RGB"),
        ("coffee_97x255", coffee.crop((330, 0, 480, 394)).resize((97, 255), Image.LANCZOS), "RGB"),
        ("astronaut_256x256", astronaut.resize((256, 256), Image.LANCZOS), "RGB"),
        ("rocket_513x260", rocket.crop((60, 100, 573, 360)), "RGB"),
        ("rocket_1x40", rocket.crop((320, 150, 321, 190)), "RGB"),
        ("chelsea_45x1", chelsea.crop((200, 150, 245, 151)), "RGB"),
        ("chelsea_5x3", chelsea.resize((5, 3), Image.BOX), "RGB"),
        ("camera_gray_173x139", camera.crop((180, 60, 353, 199)), "L"),
        ("astronaut_rgba_123x187", Image.fromarray(rgba, "RGBA"), "RGBA"),
        ("pattern_1501x1001", Image.fromarray(pattern), "RGB"),
        # Portrait downscale (Pillow resizes horizontally first) ...
        ("cells_301x433", cells(301, 433), "RGB"),
        # ... and taller than 2:1, where Pillow 13 resizes vertically first.
        ("cells_260x601", cells(260, 601), "RGB"),
        ("noise_60x60", noise, "RGB"),
    ]
    out = []
    for name, img, mode in images:
        assert img.mode == mode, (name, img.mode)
        file = save_png(img, f"{name}.png")
        out.append({"name": name, "file": file, "mode": mode, "width": img.width, "height": img.height})
    return out


# JPEG inputs whose crops are stored (the others' decoding is checked through decoded_*.png, and
# their crops by the pipelines above, against the decoded pixels).
JPEG_STORED_CROPS = {("jpeg_chelsea_420_301x217", 256, "bilinear"), ("jpeg_rocket_progressive_420_257x173", 224, "bicubic")}


def make_jpeg_inputs() -> list[dict]:
    """JPEGs as cameras and editors write them, each with Pillow's decoding of it."""
    chelsea = Image.fromarray(skdata.chelsea())
    coffee = Image.fromarray(skdata.coffee())
    astronaut = Image.fromarray(skdata.astronaut())
    rocket = Image.fromarray(skdata.rocket())
    camera = Image.fromarray(skdata.camera())
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (47, 61, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display (Pillow's Image.open ignores it)
    jpegs = [
        # (name, image, save options)
        ("jpeg_chelsea_420_301x217", chelsea.crop((75, 40, 376, 257)), {"quality": 90}),
        ("jpeg_coffee_444_151x97", coffee.resize((151, 97), Image.LANCZOS), {"quality": 95, "subsampling": 0}),
        ("jpeg_astronaut_422_progressive_129x77", astronaut.resize((129, 77), Image.LANCZOS), {"quality": 80, "subsampling": 1, "progressive": True}),
        ("jpeg_rocket_progressive_420_257x173", rocket.crop((100, 120, 357, 293)), {"quality": 75, "progressive": True, "optimize": True}),
        ("jpeg_noise_420_q100_61x47", noise, {"quality": 100, "subsampling": 2}),
        ("jpeg_camera_gray_97x65", camera.resize((97, 65), Image.LANCZOS), {"quality": 85}),
        ("jpeg_coffee_cmyk_73x41", coffee.resize((73, 41), Image.LANCZOS).convert("CMYK"), {"quality": 90}),
        ("jpeg_chelsea_exif_orientation_6_83x59", chelsea.resize((83, 59), Image.LANCZOS), {"quality": 90, "exif": exif}),
    ]
    out = []
    for name, img, options in jpegs:
        file = f"{name}.jpg"
        img.save(OUT / file, format="JPEG", **options)
        opened = Image.open(OUT / file)
        decoded = opened.convert("RGB")
        out.append(
            {
                "name": name,
                "file": file,
                "mode": opened.mode,
                "width": opened.width,
                "height": opened.height,
                "decoded": save_png(decoded, f"decoded_{name}.png"),
                "jpeg": {k: v for k, v in options.items() if k != "exif"} | ({"exif_orientation": 6} if "exif" in options else {}),
            }
        )
    return out


def open_input(entry: dict) -> Image.Image:
    img = Image.open(OUT / entry["file"])
    img.load()
    assert img.mode == entry["mode"]
    return img


# ------------------------------------------------------------------------------------------
# Reference pipelines.


def v1_pipeline(model: str):
    sys.path.insert(0, str(REF))
    import mobileclip  # noqa: PLC0415

    _, _, preprocess = mobileclip.create_model_and_transforms(model, pretrained=None, reparameterize=False)
    return preprocess


def open_clip_pipeline(model: str):
    import open_clip  # noqa: PLC0415

    pc = open_clip.get_pretrained_cfg(model, "dfndr2b")
    _, _, preprocess = open_clip.create_model_and_transforms(
        model,
        pretrained=None,
        image_mean=pc["mean"],
        image_std=pc["std"],
        image_interpolation=pc["interpolation"],
        image_resize_mode=pc["resize_mode"],
    )
    return preprocess, pc


def describe(preprocess) -> dict:
    """Read image size, interpolation, mean and std back from a torchvision Compose."""
    resize = next(t for t in preprocess.transforms if type(t).__name__ == "Resize")
    crop = next(t for t in preprocess.transforms if type(t).__name__ == "CenterCrop")
    norm = [t for t in preprocess.transforms if type(t).__name__ == "Normalize"]
    assert isinstance(resize.size, int) and resize.max_size is None, resize
    assert tuple(crop.size) == (resize.size, resize.size), crop
    return {
        "image_size": resize.size,
        "interpolation": resize.interpolation.value,
        "mean": list(norm[0].mean) if norm else [0.0, 0.0, 0.0],
        "std": list(norm[0].std) if norm else [1.0, 1.0, 1.0],
        "transforms": [repr(t) for t in preprocess.transforms],
    }


def make_pipelines() -> list[dict]:
    pipelines = []
    for name, model, models in [
        ("mobileclip_v1_256", "mobileclip_s0", ["mobileclip_s0", "mobileclip_s1", "mobileclip_s2"]),
        ("mobileclip_v1_224", "mobileclip_b", ["mobileclip_b"]),
    ]:
        pre = v1_pipeline(model)
        d = describe(pre)
        pipelines.append({"name": name, "models": models, "source": "mobileclip.create_model_and_transforms", **d, "fn": pre, "open_clip": False})
    for name, model in [
        ("mobileclip2_s0", "MobileCLIP2-S0"),
        ("mobileclip2_s2", "MobileCLIP2-S2"),
        ("mobileclip2_b", "MobileCLIP2-B"),
        ("mobileclip2_s3", "MobileCLIP2-S3"),
        ("mobileclip2_s4", "MobileCLIP2-S4"),
        ("mobileclip2_l14", "MobileCLIP2-L-14"),
    ]:
        pre, pc = open_clip_pipeline(model)
        d = describe(pre)
        pipelines.append(
            {
                "name": name,
                "models": [model],
                "source": "open_clip.create_model_and_transforms + get_pretrained_cfg(model, 'dfndr2b')",
                "pretrained_cfg": {k: v for k, v in pc.items() if k in ("mean", "std", "interpolation", "resize_mode")},
                **d,
                "fn": pre,
                "open_clip": True,
            }
        )
    return pipelines


def lut_for(pipeline: dict) -> np.ndarray:
    """Run the pipeline's own ToTensor (+ Normalize) on every uint8 value: shape (3, 256)."""
    values = np.tile(np.arange(256, dtype=np.uint8), (16, 1))  # 16x256 image of all values
    img = Image.fromarray(np.dstack([values] * 3), "RGB")
    post = [t for t in pipeline["fn"].transforms if type(t).__name__ not in ("Resize", "CenterCrop")]
    out = img
    for t in post:
        out = t(out)
    assert out.dtype == torch.float32 and out.shape == (3, 16, 256)
    assert bool((out == out[:, :1, :]).all())
    return out[:, 0, :].numpy().copy()


def lut_apply(lut: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """LUT[channel][pixel] for an HxWx3 uint8 image, CHW."""
    return np.stack([lut[c][crop[..., c]] for c in range(3)])


# ------------------------------------------------------------------------------------------
# Geometry as torchvision computes it.


def torchvision_offset(length: int, crop: int) -> int:
    """Offset of torchvision's CenterCrop along one axis, read back from a cropped index ramp."""
    ramp = (torch.arange(length, dtype=torch.float64) + 1).view(1, 1, length)
    out = TF.center_crop(ramp, [1, crop])[0, 0]
    nz = torch.nonzero(out)
    first = int(nz[0]) if len(nz) else crop
    return int(out[first]) - 1 - first


def make_geometry() -> list[dict]:
    cases = set()
    for size in (224, 256):
        for w, h in [
            (4032, 3024), (3024, 4032), (1920, 1080), (1080, 1920), (640, 480), (1, 1), (1, 40),
            (45, 1), (5, 3), (97, 255), (255, 97), (256, 256), (257, 256), (256, 301), (301, 217),
            (513, 260), (203, 311), (173, 139), (1501, 1001), (999, 1000), (225, 224), (223, 224),
            (100, 30000), (7, 12345), (12345, 6789), (65535, 3), (3000, 2999),
        ]:
            cases.add((w, h, size))
        for short in (size - 3, size - 1, size, size + 1, size + 2, size + 3, 2 * size + 1):
            for extra in range(0, 40, 3):
                cases.add((short, short + extra, size))
                cases.add((short + extra, short, size))
    rows = []
    for w, h, size in sorted(cases):
        new_h, new_w = TF._compute_resized_output_size((h, w), [size])
        rows.append(
            {
                "width": w,
                "height": h,
                "size": size,
                "resized": [new_w, new_h],
                "offset": [torchvision_offset(new_w, size), torchvision_offset(new_h, size)],
            }
        )
    # Offsets also where the crop is larger than the image (padding) and both parities.
    for length in list(range(1, 20)) + [255, 256, 257, 258, 259, 341, 342, 343]:
        for crop in (1, 2, 3, 7, 8, 224, 256):
            rows.append({"length": length, "crop": crop, "offset_only": torchvision_offset(length, crop)})
    return rows


# ------------------------------------------------------------------------------------------


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()

    inputs = make_inputs() + make_jpeg_inputs()
    pipelines = make_pipelines()

    luts = {}
    for p in pipelines:
        lut = lut_for(p)
        luts[p["name"]] = lut
        p["lut"] = f"lut_{p['name']}.f32"
        lut.astype("<f4").tofile(OUT / p["lut"])

    crops = {}  # (image, size, interpolation) -> entry
    notes = []
    for entry in inputs:
        img = open_input(entry)
        rgb = img.convert("RGB")
        for p in pipelines:
            pre = p["fn"]
            # v1 takes `Image.open(...).convert("RGB")` as in ml-mobileclip's README; open_clip's
            # pipeline converts after the crop, so it gets the image as opened, except RGBA,
            # which the Rust side treats as "drop alpha first" (see the RGBA note below), and
            # CMYK, which it converts on decoding (Pillow would resample the CMYK channels).
            src = rgb if (not p["open_clip"] or img.mode in ("RGBA", "CMYK")) else img
            tensor = pre(src)
            assert tensor.dtype == torch.float32 and tensor.shape == (3, p["image_size"], p["image_size"])

            # The uint8 image after the geometric part of this very pipeline.
            geo = src
            for t in pre.transforms:
                if type(t).__name__ in ("Resize", "CenterCrop"):
                    geo = t(geo)
            crop = np.asarray(geo.convert("RGB"))
            key = (entry["name"], p["image_size"], p["interpolation"])
            if key not in crops:
                new_h, new_w = TF._compute_resized_output_size((img.height, img.width), [p["image_size"]])
                if np.array_equal(crop, np.asarray(rgb)):
                    file = entry["file"]  # no resize, no crop: the input itself
                elif key in UNSTORED_CROPS or ("decoded" in entry and key not in JPEG_STORED_CROPS):
                    file = None
                else:
                    file = save_png(Image.fromarray(crop), f"crop_{entry['name']}_{p['image_size']}_{p['interpolation']}.png")
                crops[key] = {
                    "image": entry["name"],
                    "image_size": p["image_size"],
                    "interpolation": p["interpolation"],
                    "resized": [new_w, new_h],
                    "file": file,
                    "array": crop,
                }
            else:
                assert np.array_equal(crops[key]["array"], crop), key
            expected = lut_apply(luts[p["name"]], crop)
            got = tensor.numpy()
            assert np.array_equal(expected.view(np.uint32), got.view(np.uint32)), (entry["name"], p["name"])

            if img.mode == "RGBA" and p["open_clip"]:
                # What open_clip does with an RGBA image passed without convert("RGB"): PIL resizes
                # RGBA premultiplied (RGBa) and un-premultiplies, then MaybeConvertMode drops alpha.
                raw = pre(img).numpy()
                std = np.array(p["std"], dtype=np.float32)[:, None, None]
                diff = np.abs((raw - got) * std) * 255
                notes.append(
                    {
                        "image": entry["name"],
                        "pipeline": p["name"],
                        "max_abs_diff_u8_vs_unconverted_rgba_input": float(diff.max()),
                        "fraction_of_values_differing": float((diff > 0.5).mean()),
                    }
                )

    # Pillow resize at arbitrary sizes (both passes, one pass only, up- and downscaling).
    resizes = []
    for image, (w, h), interp in [
        ("chelsea_301x217", (333, 50), "bicubic"),
        # One pass only (the other size unchanged).
        ("noise_60x60", (37, 60), "bilinear"),
        ("noise_60x60", (60, 23), "bicubic"),
        ("noise_60x60", (60, 100), "bilinear"),
        # Around Pillow 13's pass-order boundary (vertical first iff the height shrinks and
        # 2 * (in_w - out_w) < in_h - out_h), on noise so that the order shows.
        ("noise_60x60", (54, 48), "bilinear"),
        ("noise_60x60", (54, 47), "bilinear"),
        ("noise_60x60", (54, 47), "bicubic"),
        ("noise_60x60", (40, 19), "bicubic"),
        ("noise_60x60", (40, 20), "bicubic"),
        ("noise_60x60", (90, 70), "bilinear"),
        ("noise_60x60", (90, 59), "bicubic"),
        ("noise_60x60", (13, 61), "bicubic"),
        ("coffee_97x255", (300, 31), "bilinear"),
        ("pattern_1501x1001", (123, 457), "bicubic"),
        ("astronaut_rgba_123x187", (64, 200), "bilinear"),
    ]:
        entry = next(e for e in inputs if e["name"] == image)
        img = open_input(entry).convert("RGB")
        mode = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interp]
        out = img.resize((w, h), mode)
        resizes.append(
            {
                "image": image,
                "width": w,
                "height": h,
                "interpolation": interp,
                "file": save_png(out, f"resize_{image}_{w}x{h}_{interp}.png"),
            }
        )

    # torchvision CenterCrop on images smaller than the crop (zero padding).
    center_crops = []
    for image, size in [("chelsea_5x3", 7), ("coffee_97x255", 256), ("rocket_1x40", 4), ("chelsea_45x1", 9)]:
        entry = next(e for e in inputs if e["name"] == image)
        img = open_input(entry).convert("RGB")
        out = torchvision.transforms.CenterCrop(size)(img)
        assert out.size == (size, size)
        center_crops.append(
            {"image": image, "size": size, "file": save_png(out, f"center_crop_{image}_{size}.png")}
        )

    manifest = {
        "generated_by": "tools/gen_preprocess_fixtures.py",
        "versions": {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "pillow": PIL.__version__,
            "open_clip": __import__("open_clip").__version__,
            "numpy": np.__version__,
        },
        "images": inputs,
        "pipelines": [{k: v for k, v in p.items() if k not in ("fn",)} for p in pipelines],
        "crops": [{k: v for k, v in c.items() if k != "array"} for c in crops.values() if c["file"]],
        "resizes": resizes,
        "center_crops": center_crops,
        "geometry": make_geometry(),
        "rgba_open_clip_without_convert": notes,
    }
    (OUT / "manifest.json").write_text(dumps(manifest))

    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB, to {OUT}")
    for p in pipelines:
        print(f"  {p['name']}: {p['models']} size={p['image_size']} {p['interpolation']} mean={p['mean']} std={p['std']}")
    for n in notes:
        print("  RGBA without convert:", n)


if __name__ == "__main__":
    main()
