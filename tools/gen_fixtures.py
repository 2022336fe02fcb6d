#!/usr/bin/env python3
"""Generate PyTorch-reference parity fixtures for mobileclip-wasm.

Every fixture is a folder holding

    config.json              the model config (schema of configs/*.json; small fixtures add an
                             "arch" object to image_cfg / vision_cfg, see tools/README-fixtures.md)
    model.pt                 v1: torch.save(CLIP.state_dict()), train-time (un-reparameterized),
                             the format of Apple's mobileclip_s0.pt etc.
    model.safetensors        v2: open_clip CustomTextCLIP state dict, train-time, the format of
                             HF timm/MobileCLIP2-*-OpenCLIP/open_clip_model.safetensors
    model_apple.pt           v2, one fixture only: the state dict as in apple/MobileCLIP2-*/mobileclip2_*.pt
                             (DDP-style "module." prefix, see README-fixtures.md)
    model_reparam.pt / .safetensors
                             state dict after Apple's reparameterize_model (what Apple's README
                             does before inference)
    io.safetensors           inputs and reference outputs (fp32, eval mode, no_grad)

All parameters and buffers are random (seeded, deterministic).  Apple's reference code is imported
from --reference (default: <repo>/../shared/reference/ml-mobileclip); MobileCLIP2 models are built
with open_clip + timm.

Usage:
    .venv-ref/bin/python tools/gen_fixtures.py --small --out tests/fixtures/models
    .venv-ref/bin/python tools/gen_fixtures.py --full --out /tmp/mobileclip-full --models MobileCLIP-S0,MobileCLIP2-S0
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import math
import resource
import shutil
import sys
import time
import warnings
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
CONTEXT_LENGTH = 77
# --full: the fixture of a v1 config's `open_clip` description (apple/MobileCLIP-S2-OpenCLIP, ...)
OPEN_CLIP_SUFFIX = "-OpenCLIP"

# ----------------------------------------------------------------------------------------------
# Small fixtures.  "base" is the shipped config the fixture is derived from; "arch" overrides the
# reference image-encoder constructor's keyword arguments; "text" overrides text_cfg keys.
# ----------------------------------------------------------------------------------------------
R, A = "repmixer", "attention"
T, F_ = True, False

SMALL = {
    # v1 FastViT mci0-style: 3 RepMixer stages, BatchNorm attention stage behind a RepCPE, SE in the
    # last two downsamplings and in conv_exp; "mct" text (RepMixer text blocks around a transformer).
    "v1-mci-mct": dict(
        base="MobileCLIP-S0",
        image_size=80,  # 80 -> stem 20 -> 10 -> 5 -> 3 (odd sizes through the stride-2 convs)
        embed_dim=32,
        arch=dict(
            layers=[1, 1, 1, 1],
            embed_dims=[8, 16, 32, 64],  # attention stage 64 = 2 heads of head_dim 32
            mlp_ratios=[3, 3, 3, 2],
            downsamples=[T, T, T, T],
            se_downsamples=[F_, F_, T, T],
            pos_embs=[F_, F_, F_, T],
            token_mixers=[R, R, R, A],
            norm="batch_norm",
            stem_use_scale_branch=True,
            cls_ratio=2.0,
        ),
        text=dict(dim=32, n_heads_per_layer=2, n_transformer_layers=2,
                  ffn_multiplier_per_layer=4.0, vocab_size=256),
    ),
    # v1 mci, different arrangement: 3 stages, attention in the middle (behind a RepCPE), a RepMixer
    # stage after it at the same width and resolution (v1 downsamples[1]=False and equal widths: no
    # PatchEmbed between stages 1 and 2); non-integer mlp ratio (int(32*2.5)=80); cls_ratio 3;
    # "base" text, non-causal, ffn multiplier 2.6 -> ceil(32*2.6/16)*16 = 96 (not 83).
    "v1-mci-base": dict(
        base="MobileCLIP-S1",
        image_size=64,  # 64 -> 16 -> 8 -> 8
        embed_dim=24,
        arch=dict(
            layers=[2, 1, 1],
            embed_dims=[16, 32, 32],
            mlp_ratios=[3, 2, 2.5],
            downsamples=[T, F_, T],
            se_downsamples=[F_, T, F_],
            pos_embs=[F_, T, F_],
            token_mixers=[R, A, R],
            norm="batch_norm",
            stem_use_scale_branch=True,
            cls_ratio=3.0,
        ),
        text=dict(dim=32, n_heads_per_layer=2, n_transformer_layers=2,
                  ffn_multiplier_per_layer=2.6, vocab_size=256),
    ),
    # v1 vit_b16 reduced (conv stem 4/2/2 with BN+GELU, cls token, learnable pos-embed of 196
    # entries that is *interpolated* to the 16 patches of a 64x64 image); "base" text, causal.
    "v1-vit-base-causal": dict(
        base="MobileCLIP-B",
        image_size=64,
        embed_dim=32,
        arch=dict(embed_dim=32, n_transformer_layers=2, n_attn_heads=2),
        text=dict(dim=32, n_heads_per_layer=2, n_transformer_layers=2,
                  ffn_multiplier_per_layer=4.0, vocab_size=256),
    ),
    # open_clip CustomTextCLIP, timm fastvit_mci0-style trunk; open_clip text, no_causal_mask true.
    "v2-mci0": dict(
        base="MobileCLIP2-S0",
        image_size=80,  # 80 -> 20 -> 10 -> 5 -> 3
        embed_dim=32,
        arch=dict(
            layers=[1, 1, 1, 1],
            embed_dims=[8, 16, 32, 32],
            mlp_ratios=[3, 3, 3, 3],
            downsamples=[F_, T, T, T],
            se_downsamples=[F_, F_, T, T],
            pos_embs=[F_, F_, F_, T],
            token_mixers=[R, R, R, A],
            norm="batch_norm",
            stem_use_scale_branch=True,
            cls_ratio=2.0,
        ),
        text=dict(width=32, heads=2, layers=2, vocab_size=256),
        apple_pt=True,
    ),
    # timm fastvit_mci3-style: 5 stages, no downsampling into stage 0, LayerNorm2d in the attention
    # blocks, two RepCPEs, stem without scale branch, no SE in downsamplings.
    "v2-mci3": dict(
        base="MobileCLIP2-S3",
        image_size=80,  # 80 -> 20 -> 20 -> 10 -> 5 -> 3 -> 2
        embed_dim=32,
        arch=dict(
            layers=[1, 1, 1, 1, 1],
            embed_dims=[8, 8, 16, 32, 64],
            mlp_ratios=[2, 2, 2, 2, 2],
            downsamples=[F_, T, T, T, T],
            se_downsamples=[F_, F_, F_, F_, F_],
            pos_embs=[F_, F_, F_, T, T],
            token_mixers=[R, R, R, A, A],
            norm="layer_norm_2d",
            stem_use_scale_branch=False,
            cls_ratio=2.0,
        ),
        text=dict(width=32, heads=2, layers=2, vocab_size=256),
    ),
    # timm vit_base_mci_224 reduced (conv stem E/4,E/4,E with k/s 4,2,2; no pos-embed on cls) +
    # open_clip text with causal mask (as MobileCLIP2-B).
    "v2-vit-b": dict(
        base="MobileCLIP2-B",
        image_size=64,
        embed_dim=32,
        arch=dict(embed_dim=32, depth=2, num_heads=2, img_size=64),
        text=dict(width=32, heads=2, layers=2, vocab_size=256),
    ),
}

# v1 models in open_clip's layout (apple/MobileCLIP-*-OpenCLIP), written by open_clip's own
# MobileCLIP-S1 / -S2 / -B configs ("layout": the config.json is the v1 base config with its reduced
# `open_clip` description; the loader picks that by the checkpoint's tensor names).
# open_clip's MobileCLIP-B: timm vit_base_mci_224 (not Apple's vit_b16: no stem padding, LayerNorm
# eps 1e-6) + causal open_clip text, reduced as v2-vit-b.
SMALL["openclip-b"] = dict(SMALL["v2-vit-b"], base="MobileCLIP-B", layout="open_clip")
# MobileCLIP-S1 / -S2 (fastvit_mci1 / _mci2 trunks): v2-mci0's reduced trunk and text at other
# depths and widths.
SMALL["openclip-s1"] = dict(
    base="MobileCLIP-S1", layout="open_clip", image_size=64, embed_dim=24,  # 64 -> 16 -> 8 -> 4 -> 2
    arch=dict(SMALL["v2-mci0"]["arch"], layers=[1, 2, 1, 1]), text=SMALL["v2-mci0"]["text"])
SMALL["openclip-s2"] = dict(
    SMALL["openclip-s1"], base="MobileCLIP-S2", image_size=80, embed_dim=32,  # 80 -> 20 -> 10 -> 5 -> 3
    arch=dict(SMALL["v2-mci0"]["arch"], layers=[1, 1, 2, 1], embed_dims=[16, 16, 32, 64]))

# Opt-in extras (not in the committed set; select with --small --models NAME).
EXTRA_SMALL = {
    # timm vit_large_patch14_clip_224 reduced (MobileCLIP2-L-14's tower: patch-14 conv without bias,
    # pos-embed on the cls token too, norm_pre, LayerNorm eps 1e-5) + bidirectional open_clip text.
    "v2-vit-l14": dict(
        base="MobileCLIP2-L-14",
        image_size=56,  # 4x4 patches
        embed_dim=32,
        arch=dict(embed_dim=32, depth=2, num_heads=2, img_size=56),
        text=dict(width=32, heads=2, layers=2, vocab_size=256),
    ),
}

FASTVIT_ARCH_KEYS = ("layers", "embed_dims", "mlp_ratios", "downsamples", "se_downsamples",
                     "pos_embs", "token_mixers", "norm", "stem_use_scale_branch", "cls_ratio")
V1_VIT_ARCH_KEYS = ("embed_dim", "n_transformer_layers", "n_attn_heads")
V2_VIT_ARCH_KEYS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "img_size", "patch_size")


def log(*a):
    print(*a, flush=True)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------------------------

class Builder:
    """Builds reference models (v1: Apple's mobileclip; v2: open_clip + timm) honouring `arch`."""

    def __init__(self, reference: Path):
        self.reference = reference
        sys.path.insert(0, str(reference))
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        import logging
        logging.getLogger().setLevel(logging.ERROR)  # open_clip: "No pretrained weights loaded"
        import torch  # noqa: F401
        import mobileclip  # noqa: F401  (registers mci0/1/2 and vit_b16 with timm)
        import mobileclip.image_encoder
        import mobileclip.models.mci
        import mobileclip.models.vit
        import open_clip
        import timm
        from mobileclip.modules.common.mobileone import reparameterize_model
        self.mc = mobileclip
        self.open_clip = open_clip
        self.timm = timm
        self.apple_reparameterize_model = reparameterize_model

    # -- v1 ------------------------------------------------------------------------------------
    @staticmethod
    def _capture_ctor(module, cls_name, fn):
        """Call a reference model function with its constructor replaced by a recorder and return
        the keyword arguments it would have passed (= the named model's values)."""
        captured = {}

        class _Rec:
            def __init__(self, *args, **kwargs):
                captured["args"] = args
                captured["kwargs"] = kwargs

        orig = getattr(module, cls_name)
        setattr(module, cls_name, _Rec)
        try:
            fn()
        finally:
            setattr(module, cls_name, orig)
        return captured["args"], captured["kwargs"]

    def v1_fastvit_defaults(self, model_name):
        mci = self.mc.models.mci
        args, kw = self._capture_ctor(mci, "FastViT", getattr(mci, model_name))
        kw = dict(kw)
        kw["layers"] = args[0]
        return kw

    def v1_fastvit_kwargs(self, arch):
        mci = self.mc.models.mci
        import torch.nn as nn
        out = {}
        for k, v in arch.items():
            if k not in FASTVIT_ARCH_KEYS:
                raise ValueError(f"unknown FastViT arch key {k!r}")
            if k in ("layers", "embed_dims", "mlp_ratios", "downsamples", "se_downsamples"):
                out[k] = list(v)
            elif k == "token_mixers":
                out[k] = tuple(v)
            elif k == "pos_embs":
                out[k] = [partial(mci.RepCPE, spatial_shape=(7, 7)) if b else None for b in v]
            elif k == "norm":
                if v != "batch_norm":
                    raise ValueError("v1 FastViT only has BatchNorm attention blocks")
                out["norm_layer"] = nn.BatchNorm2d
            elif k == "stem_use_scale_branch":
                if v is not True:
                    raise ValueError("v1 convolutional_stem always has the scale branch")
            elif k == "cls_ratio":
                out[k] = float(v)
        return out

    @contextlib.contextmanager
    def _v1_image_override(self, model_name, arch):
        """Make MCi's create_model(model_name, projection_dim=...) build the reduced encoder."""
        if not arch:
            yield
            return
        mci, vit, ie = self.mc.models.mci, self.mc.models.vit, self.mc.image_encoder
        if model_name.startswith("mci"):
            kw = self.v1_fastvit_defaults(model_name)
            kw.update(self.v1_fastvit_kwargs(arch))

            def create(name, **extra):
                assert name == model_name
                return mci.FastViT(**kw, **extra)
        elif model_name == "vit_b16":
            for k in arch:
                if k not in V1_VIT_ARCH_KEYS:
                    raise ValueError(f"unknown v1 ViT arch key {k!r}")
            _, ckw = self._capture_ctor(vit, "VisionTransformer", vit.vit_b16)
            cfg = dict(ckw["cfg"])
            cfg.update(arch)

            def create(name, **extra):
                assert name == model_name
                return vit.VisionTransformer(cfg=cfg, **extra)
        else:
            raise ValueError(model_name)
        orig = ie.create_model
        ie.create_model = create
        try:
            yield
        finally:
            ie.create_model = orig

    def build_v1(self, cfg):
        from mobileclip.clip import CLIP
        arch = cfg["image_cfg"].get("arch") or {}
        with self._v1_image_override(cfg["image_cfg"]["model_name"], arch):
            model = CLIP(cfg=cfg)
        return model.eval()

    # -- v2 ------------------------------------------------------------------------------------
    def v2_fastvit_kwargs(self, arch):
        import torch.nn as nn
        from timm.layers import LayerNorm2d
        from timm.models.fastvit import RepConditionalPosEnc
        out = {}
        for k, v in arch.items():
            if k not in FASTVIT_ARCH_KEYS:
                raise ValueError(f"unknown FastViT arch key {k!r}")
            if k in ("layers", "embed_dims", "mlp_ratios", "downsamples", "se_downsamples", "token_mixers"):
                out[k] = tuple(v)
            elif k == "pos_embs":
                out[k] = tuple(partial(RepConditionalPosEnc, spatial_shape=(7, 7)) if b else None for b in v)
            elif k == "norm":
                out["norm_layer"] = {"batch_norm": nn.BatchNorm2d,
                                     "layer_norm_2d": partial(LayerNorm2d, eps=1e-5)}[v]
            elif k == "stem_use_scale_branch":
                out[k] = bool(v)
            elif k == "cls_ratio":
                out[k] = float(v)
        return out

    def _v2_vit_mci(self, orig_create, arch, kw):
        """vit_base_mci_224 with overridden width/depth: timm's definition builds its conv stem with
        channels (768//4, 768//4, 768); the reduced model uses (E//4, E//4, E) the same way."""
        import torch.nn as nn
        from timm.models.vision_transformer_hybrid import ConvStem, _create_vision_transformer_hybrid
        for k in arch:
            if k not in V2_VIT_ARCH_KEYS:
                raise ValueError(f"unknown v2 ViT arch key {k!r}")
        e = arch.get("embed_dim", 768)
        backbone = ConvStem(channels=(e // 4, e // 4, e), stride=(4, 2, 2), kernel_size=(4, 2, 2),
                            padding=0, in_chans=3, act_layer=nn.GELU)
        model_args = dict(embed_dim=768, depth=12, num_heads=12, no_embed_class=True)
        model_args.update(arch)
        kw = dict(kw)
        pretrained = kw.pop("pretrained", False)
        assert not pretrained
        return _create_vision_transformer_hybrid("vit_base_mci_224", backbone=backbone,
                                                 embed_args=dict(proj=False), pretrained=False,
                                                 **dict(model_args, **kw))

    @contextlib.contextmanager
    def _v2_trunk_override(self, timm_name, arch):
        if not arch:
            yield
            return
        timm = self.timm
        orig = timm.create_model
        if timm_name.startswith("fastvit_mci"):
            over = self.v2_fastvit_kwargs(arch)

            def create(name, **kw):
                assert name == timm_name
                return orig(name, **dict(kw, **over))
        elif timm_name == "vit_base_mci_224":
            def create(name, **kw):
                assert name == timm_name
                return self._v2_vit_mci(orig, arch, kw)
        elif timm_name.startswith("vit_"):
            # plain timm ViTs take the VisionTransformer kwargs straight through
            for k in arch:
                if k not in V2_VIT_ARCH_KEYS:
                    raise ValueError(f"unknown v2 ViT arch key {k!r}")

            def create(name, **kw):
                assert name == timm_name
                return orig(name, **dict(kw, **arch))
        else:
            raise ValueError(f"no arch override for {timm_name}")
        timm.create_model = create  # open_clip.timm_model calls timm.create_model(...) at build time
        try:
            yield
        finally:
            timm.create_model = orig

    def build_v2(self, cfg):
        vision_cfg = dict(cfg["vision_cfg"])
        arch = vision_cfg.pop("arch", None) or {}
        registry = self.open_clip.get_model_config(cfg["name"]) or self.open_clip.get_model_config(cfg["_base"])
        assert registry is not None, cfg["name"]
        assert bool(registry.get("custom_text", False)) == bool(cfg.get("custom_text", False))
        with self._v2_trunk_override(vision_cfg["timm_model_name"], arch):
            model = self.open_clip.create_model(
                cfg["_base"], pretrained=None, precision="fp32", device="cpu",
                embed_dim=cfg["embed_dim"], vision_cfg=vision_cfg, text_cfg=dict(cfg["text_cfg"]))
        return model.eval()

    def build(self, cfg):
        return self.build_v1(cfg) if cfg["family"] == "mobileclip" else self.build_v2(cfg)

    def reparameterize(self, model):
        # Apple's helper (deep copy + module.reparameterize() for every module that has it); Apple's
        # README applies it to the open_clip MobileCLIP2 models as well.
        return self.apple_reparameterize_model(model).eval()


# ----------------------------------------------------------------------------------------------
# Randomisation
# ----------------------------------------------------------------------------------------------

def randomize_(model, g, images, tokens, trained_bn=False):
    """Give every parameter and persistent buffer a random value (seeded by `g`).

    Weights are ~N(0, std=1/sqrt(fan_in)); BN/LN affine ~U(0.5,1.5)/N(0,0.1); layer scales ~U(0.2,1.0);
    logit_scale = log(U(10,50)).  BatchNorm running statistics are then set, layer by layer in forward
    order, from the statistics of the actual input each BN sees (forward pre-hooks, one float64 pass
    over the fixture inputs) and perturbed (mean + N(0,0.1)*std, var * U(0.5,1.5)), so that activations
    stay O(1) through deep stacks while no BN fold is an identity.
    With `trained_bn` (--trained-bn) the statistics look like a trained network's instead, the case
    that quantization must survive: running_var is the measured variance times a log-normal factor
    10^N(0, 1) (four decades between the 2nd and 98th percentiles, so that folding makes some output
    channels dominant), and about 2% of each BN's channels are near-dead (weight scaled by 1e-3).
    Returns (number of state-dict tensors set, number of BatchNorm layers calibrated).
    """
    import torch
    import torch.nn as nn
    from torch.nn.modules.batchnorm import _BatchNorm

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=g) * std + mean

    def uniform(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    sd_keys = set(model.state_dict().keys())
    done = set()

    def put(full, t, value):
        with torch.no_grad():
            t.copy_(value.to(t.dtype).reshape(t.shape))
        done.add(full)

    norm_types = (nn.LayerNorm, nn.GroupNorm)
    for mname, mod in model.named_modules():
        pre = f"{mname}." if mname else ""
        for pname, p in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            full = pre + pname
            if full not in sd_keys:
                continue  # non-persistent buffer (e.g. open_clip's causal attn_mask)
            shape = tuple(p.shape)
            if isinstance(mod, _BatchNorm):
                if pname == "weight":
                    put(full, p, uniform(shape, 0.5, 1.5))
                elif pname == "bias":
                    put(full, p, normal(shape, 0.1))
                elif pname == "running_mean":
                    put(full, p, normal(shape, 0.1))
                elif pname == "running_var":
                    put(full, p, uniform(shape, 0.5, 1.5))
                elif pname == "num_batches_tracked":
                    put(full, p, torch.randint(1000, 100000, (), generator=g))
                continue
            if isinstance(mod, norm_types) or type(mod).__name__ in ("LayerNormChannel",):
                if pname == "weight":
                    put(full, p, uniform(shape, 0.5, 1.5))
                elif pname == "bias":
                    put(full, p, normal(shape, 0.1))
                continue
            if isinstance(mod, nn.Conv2d) and pname == "weight":
                fan_in = shape[1] * shape[2] * shape[3]
                put(full, p, normal(shape, 1.0 / math.sqrt(fan_in)))
                continue
            if isinstance(mod, nn.Linear) and pname == "weight":
                put(full, p, normal(shape, 1.0 / math.sqrt(shape[1])))
                continue
            if isinstance(mod, nn.MultiheadAttention) and pname == "in_proj_weight":
                put(full, p, normal(shape, 1.0 / math.sqrt(shape[1])))
                continue
            if isinstance(mod, nn.Embedding) and pname == "weight":
                put(full, p, normal(shape, 1.0))
                continue
            if pname in ("bias", "in_proj_bias"):
                put(full, p, normal(shape, 0.1))
                continue
            if pname in ("layer_scale", "layer_scale_1", "layer_scale_2", "gamma"):
                put(full, p, uniform(shape, 0.2, 1.0))
                continue
            if pname == "logit_scale":
                put(full, p, torch.log(uniform(shape, 10.0, 50.0)))
                continue
            if pname in ("proj", "projection_layer", "text_projection"):  # [in, out] matrices
                put(full, p, normal(shape, 1.0 / math.sqrt(shape[0])))
                continue
            if pname in ("pos_embed", "positional_embedding", "cls_token"):
                put(full, p, normal(shape, 1.0))
                continue
            raise RuntimeError(f"don't know how to randomise {full} ({type(mod).__name__}, {shape})")

    missing = sd_keys - done
    if missing:
        raise RuntimeError(f"not randomised: {sorted(missing)[:20]}")

    # --- BN running statistics from the actual activations (eval mode, forward order) ---
    calibrated = set()

    def pre_hook(mod, inputs):
        if mod in calibrated:
            return
        x = inputs[0].detach().float()
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False).clamp_min(1e-3)
        c = mean.shape[0]
        rm = mean + normal((c,), 0.1) * var.sqrt()
        if trained_bn:
            rv = var * torch.pow(10.0, normal((c,), 1.0)).to(var.dtype)
            dead = torch.rand((c,), generator=g) < 0.02
            with torch.no_grad():
                mod.weight.mul_(torch.where(dead, 1e-3, 1.0).to(mod.weight.dtype))
        else:
            rv = var * uniform((c,), 0.5, 1.5)
        # round to bfloat16 precision: the stored weights then don't depend on the last bits of
        # the reduction (thread count / CPU), only the reference outputs do
        mod.running_mean.copy_(rm.to(torch.bfloat16).float())
        mod.running_var.copy_(rv.to(torch.bfloat16).float())
        calibrated.add(mod)

    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not bns:
        return len(done), 0
    handles = [m.register_forward_pre_hook(pre_hook) for m in bns]
    # The calibration pass runs in float64 so that the statistics (rounded to bfloat16 above) do not
    # depend on the thread count / CPU: the written weights are then the same on every machine
    # (only the fp32 reference outputs can differ in the last bits).  v1's LayerNormFP32 casts its
    # input to fp32, so it runs as a plain LayerNorm meanwhile.
    fp32_ln = {type(m) for m in model.modules() if type(m).__name__ == "LayerNormFP32"}
    saved = {cls: cls.forward for cls in fp32_ln}
    model.eval()
    model.double()
    try:
        for cls in fp32_ln:
            cls.forward = nn.LayerNorm.forward
        with torch.no_grad():
            model.encode_image(images.double())
            model.encode_text(tokens)
    finally:
        for cls, fwd in saved.items():
            cls.forward = fwd
        model.float()
        for h in handles:
            h.remove()
    if len(calibrated) != len(bns):
        raise RuntimeError(f"{len(bns) - len(calibrated)} BatchNorm layers were not reached by the forward pass")
    return len(done), len(bns)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def make_images(size, n, g):
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data as skdata

    def photo(arr):
        h, w = arr.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        img = Image.fromarray(arr[top:top + s, left:left + s]).resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)

    imgs = [torch.rand((3, size, size), generator=g), photo(skdata.chelsea())]
    if n >= 3:
        imgs.append(photo(skdata.astronaut()))
    return torch.stack(imgs[:n]).contiguous()


def make_tokens(vocab, m, g):
    """Random ids in [1, vocab-2]; SOT (vocab-2) first; the EOT id vocab-1 (the unique maximum) at a
    per-sequence position (the last slot, right after SOT, and random ones); zeros after EOT."""
    import torch
    eot, sot = vocab - 1, vocab - 2
    positions = [CONTEXT_LENGTH - 1, 1]
    while len(positions) < m:
        p = int(torch.randint(2, CONTEXT_LENGTH - 1, (), generator=g))
        if p not in positions:
            positions.append(p)
    toks = torch.zeros((m, CONTEXT_LENGTH), dtype=torch.int64)
    for i, p in enumerate(positions):
        toks[i, :p] = torch.randint(1, vocab - 1, (p,), generator=g)
        toks[i, 0] = sot
        toks[i, p] = eot
    assert (toks.argmax(-1) == torch.tensor(positions)).all()
    return toks


# ----------------------------------------------------------------------------------------------
# Forward / IO
# ----------------------------------------------------------------------------------------------

def run_reference(model, family, images, tokens):
    import torch
    import torch.nn.functional as F
    with torch.no_grad():
        img_feat = model.encode_image(images)
        txt_feat = model.encode_text(tokens)
        if family == "mobileclip":
            img_emb, txt_emb, scale = model(image=images, text=tokens)
        else:
            img_emb, txt_emb, scale = model(images, tokens)  # CustomTextCLIP: (img, txt, logit_scale.exp())
    assert torch.allclose(img_emb, F.normalize(img_feat, dim=-1), atol=1e-6)
    return dict(image_features_unnormalized=img_feat, text_features_unnormalized=txt_feat,
                image_embeddings=img_emb, text_embeddings=txt_emb,
                logit_scale_exp=scale.reshape(1).clone())


def activation_stats(model, images, tokens):
    """Largest |activation| and smallest std over all leaf-module outputs (explode/vanish check)."""
    import torch
    st = {"max": 0.0, "min_std": float("inf"), "nonfinite": 0}

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel() > 1:
            o = out.detach()
            if not torch.isfinite(o).all():
                st["nonfinite"] += 1
            st["max"] = max(st["max"], float(o.abs().max()))
            st["min_std"] = min(st["min_std"], float(o.float().std()))

    hs = [m.register_forward_hook(hook) for m in model.modules() if len(list(m.children())) == 0]
    try:
        with torch.no_grad():
            model.encode_image(images)
            model.encode_text(tokens)
    finally:
        for h in hs:
            h.remove()
    return st


def plain_state_dict(model, prefix=""):
    # own, contiguous storage per tensor (as a freshly trained checkpoint has)
    return {prefix + k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(model, path, kind, prefix=""):
    import torch
    from safetensors.torch import save_file
    sd = plain_state_dict(model, prefix)
    if kind == "pt":
        torch.save(sd, path)
    else:
        save_file(sd, str(path), metadata={"format": "pt"})
    return sd


def dumps_config(obj):
    """json.dumps(indent=2) with arrays of scalars kept on one line."""
    import re
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def max_diff(a, b):
    return float((a - b).abs().max())


# ----------------------------------------------------------------------------------------------
# Fixture generation
# ----------------------------------------------------------------------------------------------

def reload_checks(builder, cfg, files, images, tokens, keep, keep_rep):
    """Load the written checkpoints into fresh reference models the way their users do; return the
    max |diff| of the embeddings against the ones written to io.safetensors (expected: 0)."""
    import torch
    from safetensors.torch import load_file
    family = cfg["family"]
    is_v1 = family == "mobileclip"
    load_diffs = {}
    fresh = builder.build(cfg)
    if is_v1:
        # what mobileclip.create_model_and_transforms does: torch.load + strict load_state_dict
        fresh.load_state_dict(torch.load(files["model"], map_location="cpu", weights_only=True))
    else:
        builder.open_clip.load_checkpoint(fresh, str(files["model"]), strict=True)
    out = run_reference(fresh, family, images, tokens)
    load_diffs["model"] = max(max_diff(out[k], keep[k]) for k in keep)
    if "apple" in files:
        # open_clip.create_model(..., pretrained="mobileclip2_*.pt") goes through load_checkpoint
        fresh2 = builder.build(cfg)
        builder.open_clip.load_checkpoint(fresh2, str(files["apple"]), strict=True)
        out = run_reference(fresh2, family, images, tokens)
        load_diffs["apple"] = max(max_diff(out[k], keep[k]) for k in keep)
        del fresh2
    # reparameterized checkpoint into a freshly reparameterized reference model
    fresh_rep = builder.reparameterize(fresh)
    del fresh
    gc.collect()
    if is_v1:
        fresh_rep.load_state_dict(torch.load(files["reparam"], map_location="cpu", weights_only=True))
    else:
        fresh_rep.load_state_dict(load_file(str(files["reparam"])))
    out = run_reference(fresh_rep, family, images, tokens)
    load_diffs["reparam"] = max(max_diff(out[k], keep_rep[k]) for k in keep_rep)
    del fresh_rep, out
    gc.collect()
    return load_diffs


def open_clip_view(cfg):
    """A v1 config as open_clip describes the model (its `open_clip` object): what the Rust loader
    makes of it for a checkpoint in open_clip's layout (ModelConfig::in_layout)."""
    oc = cfg["open_clip"]
    view = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in ("open_clip", "image_cfg", "text_cfg")}
    view.update({k: copy.deepcopy(v) for k, v in oc.items()})
    view["family"] = "open_clip"
    return view


def small_config(name, spec):
    """(config written to config.json, config the reference model is built from)."""
    cfg = json.loads((CONFIGS / f"{spec['base']}.json").read_text())
    cfg["name"] = name
    cfg["embed_dim"] = spec["embed_dim"]
    s = spec["image_size"]
    cfg["preprocess"]["image_size"] = s
    cfg["fixture"] = {"base": spec["base"], "generator": "tools/gen_fixtures.py"}
    if spec.get("layout") == "open_clip":
        # Only the open_clip description is reduced (the v1 one keeps the shipped tower at the
        # fixture's image size, and no file of the fixture is in Apple's layout).
        cfg["image_cfg"]["image_size"] = s
        oc = cfg["open_clip"]
        oc["vision_cfg"]["image_size"] = s
        oc["vision_cfg"]["arch"] = copy.deepcopy(spec["arch"])
        oc["text_cfg"].update(spec["text"])
        oc["weights"] = {"url": "model.safetensors", "format": "safetensors",
                         "notes": "random-weight parity fixture (tools/gen_fixtures.py) in open_clip's "
                                  "layout; reparameterized one in model_reparam.safetensors"}
        cfg["weights"] = {"notes": "no file of this fixture is in Apple's layout"}
        return cfg, open_clip_view(cfg)
    if cfg["family"] == "mobileclip":
        cfg["image_cfg"]["image_size"] = s
        cfg["image_cfg"]["arch"] = copy.deepcopy(spec["arch"])
        cfg["weights"] = {"url": "model.pt", "format": "pytorch",
                          "notes": "random-weight parity fixture (tools/gen_fixtures.py); train-time "
                                   "state dict, reparameterized one in model_reparam.pt"}
    else:
        cfg["vision_cfg"]["image_size"] = s
        cfg["vision_cfg"]["arch"] = copy.deepcopy(spec["arch"])
        cfg["weights"] = {"url": "model.safetensors", "format": "safetensors",
                          "notes": "random-weight parity fixture (tools/gen_fixtures.py); train-time "
                                   "state dict, reparameterized one in model_reparam.safetensors"}
        if spec.get("apple_pt"):
            cfg["weights"]["alternatives"] = ["model_apple.pt"]
    cfg["text_cfg"].update(spec["text"])
    assert cfg["text_cfg"]["context_length"] == CONTEXT_LENGTH
    return cfg, cfg


def generate(builder, name, cfg, out_dir, seed, n_images, n_tokens, apple_pt, config_src=None,
             reload_check=True, written_cfg=None, trained_bn=False):
    """Builds the reference model of `cfg` and writes the fixture; config.json is a copy of
    `config_src`, else `written_cfg` (a v1 config whose `open_clip` view `cfg` is), else `cfg`."""
    import torch
    from safetensors.torch import save_file

    t_all = time.time()
    family = cfg["family"]
    is_v1 = family == "mobileclip"
    cfg = dict(cfg)
    cfg["_base"] = cfg.get("fixture", {}).get("base", cfg["name"])
    size = (cfg["image_cfg"] if is_v1 else cfg["vision_cfg"])["image_size"]
    vocab = cfg["text_cfg"]["vocab_size"]
    out_dir.mkdir(parents=True, exist_ok=True)
    times = {}

    g = torch.Generator().manual_seed(seed)
    images = make_images(size, n_images, g)
    tokens = make_tokens(vocab, n_tokens, g)

    t = time.time()
    torch.manual_seed(seed)  # construction-time init (overwritten below anyway)
    model = builder.build(cfg)
    times["build"] = time.time() - t
    n_params = sum(p.numel() for p in model.parameters())

    t = time.time()
    n_set, n_bn = randomize_(model, g, images, tokens, trained_bn)
    times["randomize"] = time.time() - t

    t = time.time()
    ref = run_reference(model, family, images, tokens)
    times["forward"] = time.time() - t
    t = time.time()
    stats = activation_stats(model, images, tokens)
    times["act_stats"] = time.time() - t

    t = time.time()
    rep = builder.reparameterize(model)
    times["reparam"] = time.time() - t
    ref_rep = run_reference(rep, family, images, tokens)

    # --- write checkpoints ---
    t = time.time()
    files = {}
    if is_v1:
        files["model"] = out_dir / "model.pt"
        files["reparam"] = out_dir / "model_reparam.pt"
        sd_train = save_checkpoint(model, files["model"], "pt")
        sd_rep = save_checkpoint(rep, files["reparam"], "pt")
    else:
        files["model"] = out_dir / "model.safetensors"
        files["reparam"] = out_dir / "model_reparam.safetensors"
        sd_train = save_checkpoint(model, files["model"], "safetensors")
        sd_rep = save_checkpoint(rep, files["reparam"], "safetensors")
        if apple_pt:
            files["apple"] = out_dir / "model_apple.pt"
            save_checkpoint(model, files["apple"], "pt", prefix="module.")
    logit_scale = model.logit_scale.detach().reshape(1).clone()
    train_keys, rep_keys = list(sd_train.keys()), list(sd_rep.keys())
    del sd_train, sd_rep

    io = {
        "image": images.float().contiguous(),
        "tokens": tokens.to(torch.int32).contiguous(),
        "image_embeddings": ref["image_embeddings"],
        "text_embeddings": ref["text_embeddings"],
        "image_embeddings_reparam": ref_rep["image_embeddings"],
        "text_embeddings_reparam": ref_rep["text_embeddings"],
        "image_features_unnormalized": ref["image_features_unnormalized"],
        "text_features_unnormalized": ref["text_features_unnormalized"],
        "logit_scale": logit_scale,
        "logit_scale_exp": ref["logit_scale_exp"],
    }
    io = {k: v.detach().float().contiguous() if k != "tokens" else v for k, v in io.items()}
    # a single metadata entry: safetensors writes a multi-key metadata map in random order
    save_file(io, str(out_dir / "io.safetensors"), metadata={"fixture": json.dumps({
        "model": name, "family": family, "seed": seed, "torch": torch.__version__.split("+")[0],
        "eot_id": vocab - 1, "sot_id": vocab - 2,
        "note": "reference outputs of the train-time model (eval, no_grad, fp32); *_reparam from "
                "the reparameterized model",
    }, sort_keys=True)})
    if config_src is not None:
        shutil.copyfile(config_src, out_dir / "config.json")
    else:
        c = written_cfg or {k: v for k, v in cfg.items() if k != "_base"}
        (out_dir / "config.json").write_text(dumps_config(c))
    times["save"] = time.time() - t

    # --- sanity checks ---
    d_rep_img = max_diff(ref["image_embeddings"], ref_rep["image_embeddings"])
    d_rep_txt = max_diff(ref["text_embeddings"], ref_rep["text_embeddings"])
    keep = {k: ref[k] for k in ("image_embeddings", "text_embeddings")}
    keep_rep = {k: ref_rep[k] for k in ("image_embeddings", "text_embeddings")}
    img_std = float(ref["image_features_unnormalized"].std())
    txt_std = float(ref["text_features_unnormalized"].std())
    del model, rep, ref, ref_rep
    gc.collect()

    t = time.time()
    load_diffs = reload_checks(builder, cfg, files, images, tokens, keep, keep_rep) if reload_check else {}
    times["checks"] = time.time() - t

    sizes = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
    ok_rep = max(d_rep_img, d_rep_txt) <= 1e-5
    ok_load = all(v == 0.0 for v in load_diffs.values())
    log(f"== {name} ({family}, image {size}px, {n_params / 1e6:.3f}M params, {n_set} tensors randomised, "
        f"{n_bn} BN calibrated)")
    log(f"   features std: image {img_std:.3f}  text {txt_std:.3f}" + (
        f"   activations: max|x| {stats['max']:.1f}, min std {stats['min_std']:.3g}, non-finite {stats['nonfinite']}"
        if stats else ""))
    log(f"   reparam vs train max|diff|: image {d_rep_img:.2e}  text {d_rep_txt:.2e}  {'OK' if ok_rep else 'FAIL'}")
    log(f"   reload max|diff|: " + (", ".join(f"{k} {v:.1e}" for k, v in load_diffs.items()) +
                                 f"  {'OK' if ok_load else 'FAIL'}" if load_diffs else "skipped (--no-reload-check)"))
    log(f"   keys: train {len(train_keys)} (first {train_keys[:2]}), reparam {len(rep_keys)}")
    log("   files: " + ", ".join(f"{k} {v / 1e6:.3f} MB" for k, v in sizes.items()))
    log("   time: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()) +
        f", total {time.time() - t_all:.1f}s; peak RSS so far {maxrss_mb():.0f} MB")
    if not (ok_rep and ok_load):
        raise SystemExit(f"sanity check failed for {name}")
    if not (1e-3 < img_std < 1e3 and 1e-3 < txt_std < 1e3) or (stats and stats["nonfinite"]):
        raise SystemExit(f"activations exploded/vanished for {name}")
    return sum(sizes.values())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--small", action="store_true", help="reduced fixtures (committed)")
    mode.add_argument("--full", action="store_true", help="full-size models from configs/*.json")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--models", default=None, help="comma-separated fixture / config names")
    ap.add_argument("--reference", type=Path, default=REPO.parent / "shared" / "reference" / "ml-mobileclip",
                    help="Apple's ml-mobileclip checkout (default: <repo>/../shared/reference/ml-mobileclip)")
    ap.add_argument("--seed", type=int, default=20240,
                    help="base seed (each model adds a stable per-name offset)")
    ap.add_argument("--clean", action="store_true", help="delete each model folder before writing it")
    ap.add_argument("--no-reload-check", action="store_true",
                    help="skip re-loading the written checkpoints into fresh models (about a third of "
                         "the time of --full); the reparam-vs-train check always runs")
    ap.add_argument("--trained-bn", action="store_true",
                    help="BatchNorm statistics that look trained (log-normal running_var over four "
                         "decades, a few near-dead channels): the accuracy fixtures of compact files")
    args = ap.parse_args(argv)

    if not (args.reference / "mobileclip" / "__init__.py").exists():
        raise SystemExit(f"Apple reference not found at {args.reference} (use --reference)")
    import torch
    torch.set_grad_enabled(False)
    builder = Builder(args.reference.resolve())
    log(f"torch {torch.__version__}, timm {builder.timm.__version__}, open_clip {builder.open_clip.__version__}, "
        f"threads {torch.get_num_threads()}, reference {args.reference}")

    if args.small:
        names = list(SMALL)
        known = names + list(EXTRA_SMALL)
    else:
        names = sorted(p.stem for p in CONFIGS.glob("*.json"))
        # a v1 model also published in open_clip's layout: "<name>-OpenCLIP", built by open_clip
        names = sorted(names + [f"{n}{OPEN_CLIP_SUFFIX}" for n in names
                                if "open_clip" in json.loads((CONFIGS / f"{n}.json").read_text())])
        known = names
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise SystemExit(f"unknown model(s) {unknown}; choose from {known}")
        names = wanted

    total = 0
    t0 = time.time()
    for name in names:
        seed = args.seed + sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 100000
        out_dir = args.out / name
        if args.clean and out_dir.exists():
            shutil.rmtree(out_dir)
        if args.small:
            spec = SMALL.get(name) or EXTRA_SMALL[name]
            written, cfg = small_config(name, spec)
            total += generate(builder, name, cfg, out_dir, seed, n_images=2, n_tokens=4,
                              apple_pt=bool(spec.get("apple_pt")), reload_check=not args.no_reload_check,
                              written_cfg=written, trained_bn=args.trained_bn)
        else:
            src = CONFIGS / f"{name.removesuffix(OPEN_CLIP_SUFFIX)}.json"
            cfg = json.loads(src.read_text())
            if name.endswith(OPEN_CLIP_SUFFIX):
                cfg = open_clip_view(cfg)
            total += generate(builder, name, cfg, out_dir, seed, n_images=3, n_tokens=4,
                              apple_pt=False, config_src=src, reload_check=not args.no_reload_check,
                              trained_bn=args.trained_bn)
        gc.collect()
    log(f"done: {len(names)} model(s), {total / 1e6:.2f} MB in {args.out}, {time.time() - t0:.1f}s, "
        f"peak RSS {maxrss_mb():.0f} MB")


if __name__ == "__main__":
    main()
