"""digits-ddpm: class-conditional DDPM (epsilon prediction, 1000 linear-beta steps) with label dropout for CFG.

The denoiser is a residual MLP over the 64 pixels; sinusoidal time embedding plus a class embedding with an
11th row (null class 10) that training uses for 10% of the examples, so classifier-free guidance works.
Samplers here re-implement diffusers' DDIMScheduler / DDPMScheduler equations for the evaluation.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import evaluate  # noqa: E402

NAME, STEPS, BATCH, WIDTH, BLOCKS = "digits-ddpm", 8000, 128, 192, 4
T = 1000
NULL = 10
SCHEDULER = {"num_train_timesteps": T, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
             "prediction_type": "epsilon", "clip_sample": False, "timestep_spacing": "leading",
             "steps_offset": 0, "set_alpha_to_one": True}


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(WIDTH)
        self.l1 = nn.Linear(WIDTH, WIDTH)
        self.l2 = nn.Linear(WIDTH, WIDTH)

    def forward(self, h, cond):
        return h + self.l2(F.silu(self.l1(F.silu(self.norm(h))) + cond))


class Denoiser(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(64, dtype=torch.float32) / 64))
        self.t_mlp = nn.Sequential(nn.Linear(128, WIDTH), nn.SiLU(), nn.Linear(WIDTH, WIDTH))
        self.c_emb = nn.Embedding(11, WIDTH)
        self.inp = nn.Linear(64, WIDTH)
        self.blocks = nn.ModuleList([Block() for _ in range(BLOCKS)])
        self.out_norm = nn.LayerNorm(WIDTH)
        self.out = nn.Linear(WIDTH, 64)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, sample, timestep, class_label):
        a = timestep.to(torch.float32)[:, None] * self.freqs[None, :]
        cond = self.t_mlp(torch.cat([torch.sin(a), torch.cos(a)], dim=1)) + self.c_emb(class_label)
        h = self.inp(sample.reshape(-1, 64))
        for b in self.blocks:
            h = b(h, cond)
        return self.out(F.silu(self.out_norm(h))).reshape(-1, 1, 8, 8)


betas = torch.linspace(SCHEDULER["beta_start"], SCHEDULER["beta_end"], T, dtype=torch.float64)
alphas_cumprod = torch.cumprod(1 - betas, 0)


def eps_fn(model, x, t, y, w):
    tt = torch.full((x.shape[0],), t, dtype=torch.int64)
    if w == 1.0:
        return model(x, tt, y).double()
    e = model(torch.cat([x, x]).float(), torch.cat([tt, tt]), torch.cat([y, torch.full_like(y, NULL)])).double()
    ec, eu = e.chunk(2)
    return eu + w * (ec - eu)


@torch.no_grad()
def ddim(model, y, steps, w, gen):
    x = torch.randn(len(y), 1, 8, 8, generator=gen, dtype=torch.float64)
    ratio = T // steps
    ts = (np.arange(0, steps) * ratio).round()[::-1].astype(np.int64) + SCHEDULER["steps_offset"]
    for t in ts:
        prev = t - ratio
        a_t = alphas_cumprod[t]
        a_prev = alphas_cumprod[prev] if prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        e = eps_fn(model, x.float(), int(t), y, w)
        x0 = (x - (1 - a_t).sqrt() * e) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e
    return x.float().reshape(len(y), 64).numpy()


@torch.no_grad()
def ddpm(model, y, w, gen):
    x = torch.randn(len(y), 1, 8, 8, generator=gen, dtype=torch.float64)
    for t in range(T - 1, -1, -1):
        a_t = alphas_cumprod[t]
        a_prev = alphas_cumprod[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
        beta_t = 1 - a_t / a_prev
        e = eps_fn(model, x.float(), t, y, w)
        x0 = (x - (1 - a_t).sqrt() * e) / a_t.sqrt()
        mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + ((1 - beta_t).sqrt() * (1 - a_prev) / (1 - a_t)) * x
        if t > 0:
            var = (1 - a_prev) / (1 - a_t) * beta_t  # diffusers' "fixed_small"
            x = mean + var.clamp(min=1e-20).sqrt() * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        else:
            x = mean
    return x.float().reshape(len(y), 64).numpy()


def main():
    common.setup(4)
    timer = common.Timer()
    x, _, y, tr, _ = common.digits()
    xt, yt = torch.tensor(x[tr]).reshape(-1, 1, 8, 8), torch.tensor(y[tr])
    model = Denoiser()
    ema = Denoiser()
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=STEPS, pct_start=0.05)
    ac = alphas_cumprod.float()
    for step in range(STEPS):
        idx = torch.randint(0, len(yt), (BATCH,))
        x0, yb = xt[idx], yt[idx].clone()
        yb[torch.rand(BATCH) < 0.1] = NULL
        t = torch.randint(0, T, (BATCH,))
        noise = torch.randn_like(x0)
        a = ac[t].reshape(-1, 1, 1, 1)
        loss = F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, yb), noise)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            d = min(0.999, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm, alpha=1 - d)
        if step % 1000 == 0:
            print(f"step {step} loss {loss.item():.4f} {timer.minutes()} min", flush=True)
    ema.eval()
    minutes = timer.minutes()

    labels = torch.arange(10).repeat_interleave(100)
    metrics = {}
    for key, fn in [("ddim_50_eta0_guidance1", lambda g: ddim(ema, labels, 50, 1.0, g)),
                    ("ddim_50_eta0_guidance2", lambda g: ddim(ema, labels, 50, 2.0, g)),
                    ("ddpm_1000_guidance1", lambda g: ddpm(ema, labels, 1.0, g))]:
        s = fn(torch.Generator().manual_seed(123))
        metrics[key] = evaluate.evaluate(s, labels.numpy())
        print(key, metrics[key], flush=True)
    eval_minutes = timer.minutes() - minutes

    out = os.path.join(common.MODELS, NAME)
    os.makedirs(out, exist_ok=True)
    size = common.export(ema, (torch.randn(2, 1, 8, 8), torch.tensor([10, 500]), torch.tensor([1, 10])),
                         os.path.join(out, "denoiser.onnx"), ["sample", "timestep", "class_label"], ["prediction"],
                         {"sample": {0: "batch"}, "timestep": {0: "batch"}, "class_label": {0: "batch"},
                          "prediction": {0: "batch"}})
    g2 = torch.Generator().manual_seed(7)
    common.write_golden(ema, [
        (torch.randn(1, 1, 8, 8, generator=g2), torch.tensor([999]), torch.tensor([3])),
        (torch.randn(5, 1, 8, 8, generator=g2), torch.tensor([0, 1, 250, 640, 999]), torch.tensor([0, 10, 5, 9, 10]))],
        ["sample", "timestep", "class_label"], ["prediction"], os.path.join(out, "golden", "denoiser.json"))
    common.save_grid(ddim(ema, torch.arange(10).repeat(10), 50, 1.0, g2), os.path.join(common.IMG_DIR, f"{NAME}.png"))
    m = metrics["ddim_50_eta0_guidance1"]
    common.write_manifest(NAME, {
        "name": NAME, "family": "diffusion", "version": "1",
        "description": "Class-conditional DDPM on 8x8 handwritten digits (epsilon prediction, classifier-free guidance)",
        "output": common.IMAGE_OUTPUT,
        "conditioning": {"num_classes": 10, "labels": common.LABELS, "null_class": NULL},
        "graphs": {"denoiser": {"file": "denoiser.onnx",
                                "inputs": {"sample": "sample", "timestep": "timestep", "class_label": "class_label"},
                                "outputs": {"prediction": "prediction"}}},
        "scheduler": SCHEDULER,
        "batching": common.BATCHING, "instances": 1,
        "card": {**common.DATA_CARD,
                 "architecture": f"residual MLP denoiser, width {WIDTH}, {BLOCKS} blocks (LayerNorm, SiLU), "
                                 "sinusoidal timestep embedding + 11-row class embedding (row 10 = null class)",
                 "params": sum(p.numel() for p in ema.parameters()),
                 "training": f"{STEPS} steps, batch {BATCH}, AdamW one-cycle max lr 1e-3, EMA 0.999, "
                             f"label dropout 10%, seed 4; {minutes} min on 2 CPU cores "
                             f"(+{round(eval_minutes, 2)} min evaluation)",
                 "onnx_bytes": size,
                 "metrics": {
                     "sampler": "DDIM 50 steps, leading spacing, eta 0, guidance_scale 1 (no guidance), "
                                "100 samples per class, no clipping",
                     "class_accuracy": m["class_accuracy"], "fid": m["fid"], "fid_floor": m["fid_floor"],
                     "by_sampler": metrics,
                     "evaluator": "models/training/evaluate.py"}}})
    print("done", NAME, minutes, "min", flush=True)


if __name__ == "__main__":
    main()
