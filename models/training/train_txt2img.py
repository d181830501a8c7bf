"""digits-txt2img: a tiny Stable-Diffusion-1.x-shaped text-to-image model, exported in Optimum's ONNX layout.

Data and caption grammar: txt2img_data.py (captioned 3x32x32 renders of the train split of the sklearn digits).
Modules: txt2img_model.py. Stages, each deterministic given its seed (CPU, GS_THREADS threads):
  1. vae:    AutoencoderKL 3x32x32 <-> 4x8x8, MSE + small KL, on renders jittered by +-2 px; scaling_factor =
             1 / std of the latent samples of renders of the train split (what SD did).
  2. unet:   text encoder + UNet trained jointly from scratch on epsilon prediction (scaled_linear betas, 1000
             steps, uniform t) over a pool of POOL centred captioned renders encoded once by the VAE; captions
             dropped to "" 10% of the time (classifier-free guidance); EMA of both weights.
  3. unet2:  stage 2, continues stage 1 (raw and EMA weights) with batch 64 and a lower peak lr (as digits-ddpm's
             stage 2); its EMA is what ships.
  4. export: ONNX graphs + configs in Optimum's folder layout into models/digits-txt2img/ (the tokenizer checked
             against the real CLIP BPE), and the torch weights (EMA) into models/training/weights/digits-txt2img.pt
             for the reference pipeline and the evaluation.
Checkpoints between stages: models/training/checkpoints/ (not committed).

    python3 train_txt2img.py                       # all stages (what train_all.sh runs)
    python3 train_txt2img.py --stage vae|unet|unet2|export
    python3 train_txt2img.py --export-only --timestep scalar OUT_DIR   # same weights, float32 scalar timestep

Timesteps: the shipped unet takes `timestep` float32 [batch] (one per row: the server batches rows at
different steps); `--timestep scalar` writes the scalar form current Optimum exports (not shipped).
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import txt2img_data as D  # noqa: E402
import txt2img_model as M  # noqa: E402

NAME = "digits-txt2img"
CKPT = os.path.join(common.HERE, "checkpoints")
WEIGHTS = os.path.join(common.HERE, "weights", NAME + ".pt")

VAE_CHS, LATENT_CH = (16, 32, 64), 4
VAE_STEPS, VAE_BATCH, VAE_LR, VAE_KL = 800, 64, 2e-3, 1e-5
TEXT = dict(d=64, layers=2, heads=4, mlp=128)
UNET_CHS = (32, 48, 48)
UNET_STEPS = int(os.environ.get("GS_TXT2IMG_STEPS", "5000"))
UNET_BATCH, UNET_LR, EMA, P_UNCOND = 48, 1e-3, 0.999, 0.1
UNET2_STEPS = int(os.environ.get("GS_TXT2IMG_STEPS2", "3500"))
UNET2_BATCH, UNET2_LR = 64, 4e-4
POOL = 20000  # renders encoded once by the frozen VAE encoder (mean, log-variance); latents sampled per use

SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.30.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}


def alphas_cumprod():
    betas = torch.linspace(SCHEDULER["beta_start"] ** 0.5, SCHEDULER["beta_end"] ** 0.5,
                           SCHEDULER["num_train_timesteps"], dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0)


def log(msg):
    print(msg, flush=True)


def train_data():
    _, levels, y, tr, _ = common.digits()
    return levels[tr], y[tr]


# ------------------------------------------------------------------------------------------------ stage 1
def stage_vae():
    common.setup(1)
    timer = common.Timer()
    levels, y = train_data()
    rng = np.random.RandomState(1)
    vae = M.AutoencoderKL(VAE_CHS, LATENT_CH)
    log(f"vae params {M.n_params(vae)}")
    opt = torch.optim.Adam(vae.parameters(), lr=VAE_LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=VAE_LR, total_steps=VAE_STEPS, pct_start=0.05)
    for step in range(VAE_STEPS):
        idx = rng.randint(0, len(y), VAE_BATCH)
        x = D.render(levels[idx], *D.sample_attributes(VAE_BATCH, rng))
        mean, logvar = vae.encode(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        rec = vae.decoder(z)
        mse = F.mse_loss(rec, x)
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()
        loss = mse + VAE_KL * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == VAE_STEPS - 1:
            log(f"vae step {step} mse {mse.item():.5f} kl {kl.item():.3f} {timer.minutes()} min")
    vae.eval()
    # held-out reconstruction and the latent scale, both on fresh renders
    _, lv_all, _, _, ho = common.digits()
    hrng = np.random.RandomState(2)
    with torch.no_grad():
        xh = D.render(lv_all[ho], *D.sample_attributes(len(ho), hrng))
        mh, _ = vae.encode(xh)
        ho_mse = F.mse_loss(vae.decoder(mh), xh).item()
        zs = []
        for i in range(0, len(y), 256):
            xb = D.render(levels[i:i + 256], *D.sample_attributes(len(levels[i:i + 256]), rng))
            m, lvar = vae.encode(xb)
            zs.append(m + torch.randn_like(m) * torch.exp(0.5 * lvar))
        z = torch.cat(zs)
    scaling = float(1.0 / z.std())
    log(f"vae held-out mse {ho_mse:.5f}; latent mean {z.mean().item():.4f} std {z.std().item():.4f} "
        f"-> scaling_factor {scaling:.5f}")
    os.makedirs(CKPT, exist_ok=True)
    torch.save({"vae": vae.state_dict(), "scaling_factor": scaling, "heldout_mse": ho_mse,
                "minutes": timer.minutes()}, os.path.join(CKPT, "txt2img_vae.pt"))
    log(f"stage vae done {timer.minutes()} min")


# ------------------------------------------------------------------------------------------------ stage 2
def make_text_unet(vocab_size):
    te = M.ClipTextModel(vocab_size, D.MAX_LEN, **TEXT)
    unet = M.UNet2DCondition(UNET_CHS, ctx_dim=TEXT["d"], in_ch=LATENT_CH, out_ch=LATENT_CH)
    return te, unet


def load_vae():
    ck = torch.load(os.path.join(CKPT, "txt2img_vae.pt"))
    vae = M.AutoencoderKL(VAE_CHS, LATENT_CH)
    vae.load_state_dict(ck["vae"])
    vae.eval()
    return vae, ck


def latent_pool(vae, tok, levels, y):
    """POOL renders of the train split with their captions' ids, encoded once (mean ++ log-variance)."""
    rng = np.random.RandomState(3)
    idx = rng.randint(0, len(y), POOL)
    attrs = D.sample_attributes(POOL, rng, jitter=D.DATA_JITTER)
    ids = tok.batch([D.caption(y[i], s, f, b) for i, s, f, b in zip(idx, attrs[0], attrs[1], attrs[2])])
    params = []
    with torch.no_grad():
        for i in range(0, POOL, 500):
            sl = slice(i, i + 500)
            x = D.render(levels[idx[sl]], *(a[sl] for a in attrs))
            params.append(torch.cat(vae.encode(x), dim=1))
    return torch.cat(params), ids


def train_loop(te, unet, ema_te, ema_unet, trainable, steps, lr_at, seed, params, ids, empty, scaling, timer,
               tag, deadline=None, batch=None, ckpt_every=None):
    batch = batch or UNET_BATCH
    ema_by_name = dict(list(ema_te.named_parameters(prefix="te")) + list(ema_unet.named_parameters(prefix="unet")))
    live = dict(list(te.named_parameters(prefix="te")) + list(unet.named_parameters(prefix="unet")))
    trainable_ids = {id(p) for p in trainable}
    pairs = [(ema_by_name[n], p) for n, p in live.items() if id(p) in trainable_ids]
    opt = torch.optim.AdamW(trainable, lr=lr_at(0), weight_decay=0.0)
    ac = alphas_cumprod().float()
    g = torch.Generator().manual_seed(seed)
    running, step = 0.0, 0
    for step in range(steps):
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step)
        b = torch.randint(0, len(params), (batch,), generator=g)
        mean, logvar = params[b].chunk(2, dim=1)
        z0 = (mean + torch.randn(mean.shape, generator=g) * torch.exp(0.5 * logvar)) * scaling
        t = torch.randint(0, SCHEDULER["num_train_timesteps"], (batch,), generator=g)
        noise = torch.randn(z0.shape, generator=g)
        a = ac[t][:, None, None, None]
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        bid = ids[b].clone()
        drop = torch.rand(batch, generator=g) < P_UNCOND
        bid[drop] = empty
        ctx, _ = te(bid)
        loss = F.mse_loss(unet(zt, t.float(), ctx), noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        d = min(EMA, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in pairs:
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        running = loss.item() if step == 0 else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == steps - 1:
            log(f"{tag} step {step} loss {loss.item():.4f} smoothed {running:.4f} lr {lr_at(step):.2e} "
                f"{timer.minutes()} min")
        if ckpt_every and (step + 1) % ckpt_every == 0:
            torch.save({"text_encoder": ema_te.state_dict(), "unet": ema_unet.state_dict(), "steps": step + 1},
                       os.path.join(CKPT, f"txt2img_{tag}_step{step + 1}.pt"))
        if deadline and timer.minutes() > deadline:
            log(f"deadline {deadline} min reached at step {step}")
            break
    return step + 1, running


def cosine(peak, steps, warm, floor):
    def lr_at(step):
        if step < warm:
            return peak * (step + 1) / warm
        return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))
    return lr_at


def unet_setup():
    common.setup(3)  # the initialisation of both phases: te, then unet (its text-pool parameters last)
    vae, vck = load_vae()
    tok = D.CaptionTokenizer()
    te, unet = make_text_unet(len(tok.vocab))
    levels, y = train_data()
    params, ids = latent_pool(vae, tok, levels, y)
    empty = torch.tensor(tok(""), dtype=torch.int64)
    return vck["scaling_factor"], tok, te, unet, params, ids, empty


def stage_unet():
    """Text encoder + UNet (its text-pool path included) from scratch on the centred captioned renders."""
    timer = common.Timer()
    deadline = float(os.environ.get("GS_DEADLINE_MIN", "0")) or None
    scaling, tok, te, unet, params, ids, empty = unet_setup()
    log(f"latent pool {tuple(params.shape)} encoded in {timer.minutes()} min")
    log(f"text encoder params {M.n_params(te)}, unet params {M.n_params(unet)}")
    ema_te, ema_unet = copy.deepcopy(te), copy.deepcopy(unet)
    for m in (ema_te, ema_unet):
        m.requires_grad_(False)
    trainable = list(te.parameters()) + list(unet.parameters())
    steps, running = train_loop(te, unet, ema_te, ema_unet, trainable, UNET_STEPS, cosine(UNET_LR, UNET_STEPS, 200, 0.1),
                                3, params, ids, empty, scaling, timer, "unet", deadline)
    os.makedirs(CKPT, exist_ok=True)
    torch.save({"text_encoder": ema_te.state_dict(), "unet": ema_unet.state_dict(),
                "raw_text_encoder": te.state_dict(), "raw_unet": unet.state_dict(),
                "steps": steps, "final_smoothed_loss": running, "minutes": timer.minutes()},
               os.path.join(CKPT, "txt2img_unet1.pt"))
    log(f"stage unet done {timer.minutes()} min, {steps} steps, smoothed loss {running:.4f}")


def stage_unet2():
    """Stage 2 (as digits-ddpm's): continue stage 1's raw and EMA weights with a larger batch and a lower peak lr.
    Stage 1 alone (5,000 steps, 23.7 min) read 38.6% of the digits right at the serving defaults; the digit
    shapes were still forming (colours and sizes were already ~100%)."""
    timer = common.Timer()
    deadline = float(os.environ.get("GS_DEADLINE_MIN2", "0")) or None
    scaling, tok, te, unet, params, ids, empty = unet_setup()
    ck = torch.load(os.path.join(CKPT, "txt2img_unet1.pt"))
    ema_te, ema_unet = copy.deepcopy(te), copy.deepcopy(unet)
    te.load_state_dict(ck["raw_text_encoder"])
    unet.load_state_dict(ck["raw_unet"])
    ema_te.load_state_dict(ck["text_encoder"])
    ema_unet.load_state_dict(ck["unet"])
    for m in (ema_te, ema_unet):
        m.requires_grad_(False)
    trainable = list(te.parameters()) + list(unet.parameters())
    steps, running = train_loop(te, unet, ema_te, ema_unet, trainable, UNET2_STEPS,
                                cosine(UNET2_LR, UNET2_STEPS, 50, 0.1), 4, params, ids, empty, scaling, timer,
                                "unet2", deadline, batch=UNET2_BATCH, ckpt_every=1000)
    torch.save({"text_encoder": ema_te.state_dict(), "unet": ema_unet.state_dict(),
                "raw_text_encoder": te.state_dict(), "raw_unet": unet.state_dict(),
                "steps": steps, "final_smoothed_loss": running, "minutes": timer.minutes(),
                "stage1_steps": ck["steps"], "stage1_minutes": ck["minutes"]},
               os.path.join(CKPT, "txt2img_unet.pt"))
    log(f"stage unet2 done {timer.minutes()} min, {steps} steps, smoothed loss {running:.4f}")


# ------------------------------------------------------------------------------------------------ stage 3
DIFFUSERS_VERSION = "0.30.0"
OPSET = 17


class TextEncoderExport(nn.Module):
    def __init__(self, te):
        super().__init__()
        self.te = te

    def forward(self, input_ids):
        return self.te(input_ids)


class UNetExport(nn.Module):
    """timestep float32 [batch] (one per row) or, with scalar=True, a float32 scalar broadcast to the batch."""

    def __init__(self, unet, scalar=False):
        super().__init__()
        self.unet, self.scalar = unet, scalar

    def forward(self, sample, timestep, encoder_hidden_states):
        if self.scalar:
            timestep = timestep.reshape(1).expand(sample.shape[0])
        return self.unet(sample, timestep, encoder_hidden_states)


class VaeEncoderExport(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, sample):
        return self.vae.encoder(sample)  # [mean, log-variance] on dim 1, unclamped (diffusers clamps on use)


class VaeDecoderExport(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample):
        return self.vae.decoder(latent_sample)


def load_all():
    """(vae, text_encoder, unet, scaling_factor, tokenizer) with the shipped (EMA) weights, eval mode."""
    w = torch.load(WEIGHTS)
    tok = D.CaptionTokenizer()
    vae = M.AutoencoderKL(VAE_CHS, LATENT_CH)
    te, unet = make_text_unet(len(tok.vocab))
    vae.load_state_dict(w["vae"])
    te.load_state_dict(w["text_encoder"])
    unet.load_state_dict(w["unet"])
    for m in (vae, te, unet):
        m.eval()
    return vae, te, unet, w["scaling_factor"], tok


def configs(scaling, vocab_size, tok):
    heads = [max(1, c // 32) for c in UNET_CHS]
    n = len(UNET_CHS)
    unet = {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": DIFFUSERS_VERSION,
        "act_fn": "silu", "addition_embed_type": None,
        # diffusers' legacy name: attention_head_dim holds the number of heads per block (head width 32 here)
        "attention_head_dim": heads, "block_out_channels": list(UNET_CHS), "center_input_sample": False,
        "class_embed_type": None, "cross_attention_dim": TEXT["d"],
        "down_block_types": ["CrossAttnDownBlock2D"] * (n - 1) + ["DownBlock2D"],
        "downsample_padding": 1, "dual_cross_attention": False, "flip_sin_to_cos": True, "freq_shift": 0,
        "in_channels": LATENT_CH, "layers_per_block": 1, "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-6, "norm_num_groups": M.GROUPS,
        "only_cross_attention": False, "out_channels": LATENT_CH, "sample_size": D.IMAGE // 4,
        "time_embedding_type": "positional", "transformer_layers_per_block": 1,
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (n - 1), "upcast_attention": False,
        "use_linear_projection": True,
        "_digits_txt2img": "smaller than SD 1.x: the finest level's transformer blocks have no self-attention, "
                           "feed-forward width 2x; a learned-query attention pooling of encoder_hidden_states is "
                           "added to the time embedding inside the graph (inputs stay SD 1.x's three); latent "
                           "height/width must be multiples of 4",
    }
    vae = {
        "_class_name": "AutoencoderKL", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "silu",
        "block_out_channels": list(VAE_CHS), "down_block_types": ["DownEncoderBlock2D"] * len(VAE_CHS),
        "force_upcast": False, "in_channels": 3, "latent_channels": LATENT_CH, "latents_mean": None,
        "latents_std": None, "layers_per_block": 1, "mid_block_add_attention": False,
        "norm_num_groups": M.GROUPS, "out_channels": 3, "sample_size": D.IMAGE,
        "scaling_factor": scaling, "shift_factor": None,
        "up_block_types": ["UpDecoderBlock2D"] * len(VAE_CHS), "use_post_quant_conv": False,
        "use_quant_conv": False,
    }
    text = {
        "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": tok.bos,
        "dropout": 0.0, "eos_token_id": tok.eos, "hidden_act": "quick_gelu", "hidden_size": TEXT["d"],
        "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": TEXT["mlp"],
        "layer_norm_eps": 1e-5, "max_position_embeddings": D.MAX_LEN, "model_type": "clip_text_model",
        "num_attention_heads": TEXT["heads"], "num_hidden_layers": TEXT["layers"], "pad_token_id": tok.pad,
        "projection_dim": TEXT["d"], "torch_dtype": "float32", "transformers_version": "4.44.0",
        "vocab_size": vocab_size,
    }
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    return unet, vae, text, index


def _write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def _export(module, args, path, inputs, outputs, axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, path, opset_version=OPSET, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, do_constant_folding=True)
    import onnx
    model = onnx.load(path)
    onnx.checker.check_model(model)
    return model


def export_folder(out, timestep="batch"):
    """Write the Optimum-layout folder `out` from WEIGHTS; timestep "batch" ([batch]) or "scalar" ([])."""
    vae, te, unet, scaling, tok = load_all()
    unet_cfg, vae_cfg, text_cfg, index = configs(scaling, len(tok.vocab), tok)
    torch.manual_seed(0)
    ids = torch.tensor([tok("a small red seven on a blue background"), tok("")], dtype=torch.int32)
    _export(TextEncoderExport(te), (ids,), os.path.join(out, "text_encoder", "model.onnx"),
            ["input_ids"], ["last_hidden_state", "pooler_output"],
            {"input_ids": {0: "batch_size", 1: "sequence_length"},
             "last_hidden_state": {0: "batch_size", 1: "sequence_length"}, "pooler_output": {0: "batch_size"}})
    _write_json(os.path.join(out, "text_encoder", "config.json"), text_cfg)
    sample = torch.randn(2, LATENT_CH, 8, 8)
    ehs = torch.randn(2, D.MAX_LEN, TEXT["d"])
    if timestep == "scalar":
        ts, t_axes = torch.tensor(981.0), {}
    else:
        ts, t_axes = torch.tensor([981.0, 1.0]), {0: "batch_size"}
    _export(UNetExport(unet, scalar=timestep == "scalar"), (sample, ts, ehs), os.path.join(out, "unet", "model.onnx"),
            ["sample", "timestep", "encoder_hidden_states"], ["out_sample"],
            {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": t_axes,
             "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
             "out_sample": {0: "batch_size", 2: "height", 3: "width"}})
    _write_json(os.path.join(out, "unet", "config.json"), unet_cfg)
    _export(VaeEncoderExport(vae), (torch.randn(1, 3, 32, 32),), os.path.join(out, "vae_encoder", "model.onnx"),
            ["sample"], ["latent_parameters"],
            {"sample": {0: "batch_size", 2: "sample_height", 3: "sample_width"},
             "latent_parameters": {0: "batch_size", 2: "sample_height / 4", 3: "sample_width / 4"}})
    _write_json(os.path.join(out, "vae_encoder", "config.json"), vae_cfg)
    _export(VaeDecoderExport(vae), (torch.randn(1, LATENT_CH, 8, 8),), os.path.join(out, "vae_decoder", "model.onnx"),
            ["latent_sample"], ["sample"],
            {"latent_sample": {0: "batch_size", 2: "latent_height", 3: "latent_width"},
             "sample": {0: "batch_size", 2: "latent_height * 4", 3: "latent_width * 4"}})
    _write_json(os.path.join(out, "vae_decoder", "config.json"), vae_cfg)
    tok.save(os.path.join(out, "tokenizer"))
    check_tokenizer(os.path.join(out, "tokenizer"))
    _write_json(os.path.join(out, "scheduler", "scheduler_config.json"), SCHEDULER)
    _write_json(os.path.join(out, "model_index.json"), index)
    describe(out)


def check_tokenizer(folder):
    """Real CLIP BPE (clip_bpe.py, openai's algorithm) on the written vocab.json/merges.txt must give exactly the
    ids training used (the whole-word lookup) for every caption of the grammar and for ""."""
    for path in (common.HERE, "/work/wt-clip-tokenizer/models/training"):  # the latter until clip_bpe lands here
        if os.path.exists(os.path.join(path, "clip_bpe.py")):
            sys.path.insert(0, path)
            break
    import clip_bpe
    bpe = clip_bpe.ClipBpe.from_folder(folder)
    tok = D.CaptionTokenizer()
    captions = [""] + [D.caption(d, s, f, b) for d in range(10) for s in range(len(D.SIZE_NAMES))
                       for f in range(len(D.COLOUR_NAMES)) for b in range(len(D.COLOUR_NAMES)) if f != b]
    for c in captions:
        if bpe(c) != tok(c):
            raise AssertionError(f"CLIP BPE {bpe(c)} != training ids {tok(c)} for {c!r}")
    log(f"tokenizer: CLIP BPE (clip_bpe.py) == training ids for all {len(captions)} captions incl. \"\"; "
        f"vocab {len(tok.vocab)}, {len(tok.merges)} merges")


def describe(folder):
    """Print every graph's inputs/outputs (name, dtype, shape with symbolic dims) and check shape inference."""
    import onnx
    for sub in ("text_encoder", "unet", "vae_encoder", "vae_decoder"):
        path = os.path.join(folder, sub, "model.onnx")
        m = onnx.load(path)
        onnx.checker.check_model(m)
        inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]

        def fmt(v):
            t = v.type.tensor_type
            dims = [d.dim_param or str(d.dim_value) for d in t.shape.dim]
            return f"{v.name} {onnx.TensorProto.DataType.Name(t.elem_type)} [{', '.join(dims)}]"
        log(f"{sub}/model.onnx opset {opset}, {os.path.getsize(path)} bytes, {len(inferred.graph.node)} nodes")
        for v in m.graph.input:
            log(f"  in  {fmt(v)}")
        for v in m.graph.output:
            log(f"  out {fmt(v)}")


def stage_export():
    timer = common.Timer()
    vck = torch.load(os.path.join(CKPT, "txt2img_vae.pt"))
    uck = torch.load(os.path.join(CKPT, "txt2img_unet.pt"))
    os.makedirs(os.path.dirname(WEIGHTS), exist_ok=True)
    torch.save({"vae": vck["vae"], "text_encoder": uck["text_encoder"], "unet": uck["unet"],
                "scaling_factor": vck["scaling_factor"]}, WEIGHTS)
    log(f"weights (EMA) -> {os.path.relpath(WEIGHTS, common.REPO)} ({os.path.getsize(WEIGHTS)} bytes)")
    staging = common.staging_dir(NAME)
    export_folder(staging)
    final = os.path.join(common.MODELS, NAME)
    os.makedirs(final, exist_ok=True)
    readme = os.path.join(final, "README.md")  # the card is written by hand from the evaluation; keep it
    common.swap_in(staging, final)
    log(f"stage export done {timer.minutes()} min" + ("" if os.path.exists(readme) else " (no README.md yet)"))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--stage", default="all", choices=["all", "vae", "unet", "unet2", "export"])
    p.add_argument("--export-only", action="store_true", help="re-export the saved weights into OUT_DIR")
    p.add_argument("--timestep", default="batch", choices=["batch", "scalar"])
    p.add_argument("out_dir", nargs="?")
    a = p.parse_args()
    if a.export_only:
        if not a.out_dir:
            p.error("--export-only needs OUT_DIR")
        export_folder(a.out_dir, a.timestep)
        sys.exit(0)
    if a.stage in ("all", "vae"):
        stage_vae()
    if a.stage in ("all", "unet"):
        stage_unet()
    if a.stage in ("all", "unet2"):
        stage_unet2()
    if a.stage in ("all", "export"):
        stage_export()
