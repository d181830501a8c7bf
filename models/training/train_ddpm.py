"""digits-ddpm: class-conditional DDPM (epsilon prediction, 1000 linear-beta steps) with label dropout for CFG.

The denoiser is a residual MLP over the 64 pixels; sinusoidal time embedding plus a class embedding with an
11th row (null class 10) that training uses for 10% of the examples, so classifier-free guidance works.
Samplers here re-implement diffusers' DDIMScheduler / DDPMScheduler equations for the evaluation, plus
DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models", Algorithm 2 / eq. 8) from the published equations.

v2 = v1 + a second stage. v1 (stage 1: 8,000 steps, one-cycle lr) met the targets with ancestral DDPM-1000
(99.2% / FID 8.5) but not with the deterministic few-step samplers the service defaults to (DDIM-50: 92.9% /
FID 26.7): their error is the accumulated error of the epsilon predictions, which only more training reduces.
Stage 2 continues from the stage-1 EMA weights with a larger batch at a constant lr and a slower EMA; the EMA
is scored with DDIM-50 every EVAL_EVERY steps on a selection seed (321) and the best checkpoint is kept; the
card reports other seeds (123) so the reported numbers are not the ones the selection was made on.

v3 = v2 + a third stage: the DDIM-50 FID on the selection seed fell at every stage-2 checkpoint (18.5 -> 15.4 ->
12.1 -> 10.6), so stage 3 continues the same recipe for STEPS3 steps with the lr decayed to 0 by a cosine (the end of
an lr decay is where an EMA's predictions settle). The card gives DDIM-50 and DDPM-1000 over sampling seeds 123-125.

    python3 train_ddpm.py                         # stages 1, 2 and 3 (what train_all.sh runs)
    python3 train_ddpm.py --stage1-from X.onnx    # take the stage-1 EMA weights from the v1 export instead
    python3 train_ddpm.py --stage2-from X.onnx    # stage 3 only, from a v2 export (how v3 was made here)
"""
import argparse
import copy
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
# stage 2: a fixed step count so train_all.sh reproduces the run; GS_DEADLINE_MIN only cuts a run short
STEPS2 = int(os.environ.get("GS_DDPM_STEPS2", "6000"))
STEPS3 = int(os.environ.get("GS_DDPM_STEPS3", "8000"))
BATCH2, LR2, EMA2, EVAL_EVERY = 256, 2e-4, 0.9995, 2000
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


@torch.no_grad()
def dpmpp_2m(model, y, steps, w, gen):
    """DPM-Solver++(2M), data prediction, on the discrete VP schedule: alpha_t = sqrt(abar_t),
    sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t); timesteps linspace(999, 0, steps + 1) rounded
    (the last step lands on t = 0, abar = 0.9999, whose x is returned). First step first order (DDIM), then
    x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (e^{-h_i} - 1) D_i with
    D_i = (1 + 1/(2 r_i)) x0_{i-1} - 1/(2 r_i) x0_{i-2}, r_i = h_{i-1} / h_i."""
    x = torch.randn(len(y), 1, 8, 8, generator=gen, dtype=torch.float64)
    ts = np.linspace(T - 1, 0, steps + 1).round().astype(np.int64)
    alpha = alphas_cumprod.sqrt()
    sigma = (1 - alphas_cumprod).sqrt()
    lam = alpha.log() - sigma.log()
    x0_prev, h_prev = None, None
    for i in range(steps):
        s_, t_ = int(ts[i]), int(ts[i + 1])
        e = eps_fn(model, x.float(), s_, y, w)
        x0 = (x - sigma[s_] * e) / alpha[s_]
        h = lam[t_] - lam[s_]
        if x0_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        x = (sigma[t_] / sigma[s_]) * x - alpha[t_] * torch.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x.float().reshape(len(y), 64).numpy()


def load_from_onnx(model, path):
    """Stage-1 weights from an exported denoiser (initializer names are the PyTorch parameter names)."""
    import onnx
    from onnx import numpy_helper
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    state = model.state_dict()
    for k in state:
        if k == "freqs":
            continue
        state[k] = torch.from_numpy(inits[k].copy())
    model.load_state_dict(state)


def train_step(model, opt, xt, yt, ac, batch):
    """One epsilon-prediction step with 10% label dropout to the null class (classifier-free guidance)."""
    idx = torch.randint(0, len(yt), (batch,))
    x0, yb = xt[idx], yt[idx].clone()
    yb[torch.rand(batch) < 0.1] = NULL
    t = torch.randint(0, T, (batch,))
    noise = torch.randn_like(x0)
    a = ac[t].reshape(-1, 1, 1, 1)
    loss = F.mse_loss(model(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, yb), noise)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def stage2(start, xt, yt, timer, stage=2, steps=None, cosine=False):
    """Continue from the previous stage's EMA weights: AdamW at lr LR2 (constant in stage 2; cosine-decayed to 0 over
    the stage in stage 3), batch 256, EMA 0.9995. The EMA is scored with DDIM-50 every EVAL_EVERY steps on the
    selection seed 321 and the best checkpoint (the start included) is kept. A constant lr can be stopped at any
    checkpoint, so a deadline-cut stage 2 is reproduced by its step count."""
    steps = STEPS2 if steps is None else steps
    deadline = float(os.environ.get("GS_DEADLINE_MIN", "1e9"))
    model = copy.deepcopy(start).train()
    ema = copy.deepcopy(start)
    opt = torch.optim.AdamW(model.parameters(), lr=LR2, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    ac = alphas_cumprod.float()
    labels = torch.arange(10).repeat_interleave(100)
    best, best_state, best_step, done = None, None, 0, 0
    ema.eval()
    # A stage draws the same batches whether it runs alone (--stage1-from, --stage2-from) or after another stage in
    # this process (train_all.sh): run alone, the start evaluation below is the process's first classifier load, and
    # building the classifier draws its initial weights from torch's global RNG; after an earlier stage it is cached,
    # so the same draws are made here by building one and discarding it. The shipped v2 and v3 were trained as stages
    # run alone; without this, a full run's stage 3 drew other batches (found by the 2026-12-03 train_all.sh run).
    if evaluate.classifier_loaded():
        evaluate.DigitClassifier()
    m0 = evaluate.evaluate(ddim(ema, labels, 50, 1.0, torch.Generator().manual_seed(321)), labels.numpy())
    print(f"stage {stage} start ddim50(seed 321) {m0}", flush=True)
    best, best_state = m0, copy.deepcopy(ema.state_dict())
    for step in range(steps):
        loss = train_step(model, opt, xt, yt, ac, BATCH2)
        if sched is not None:
            sched.step()
        common.ema_update(ema, model, EMA2)
        done = step + 1
        if done % EVAL_EVERY == 0 or done == steps:
            m = evaluate.evaluate(ddim(ema, labels, 50, 1.0, torch.Generator().manual_seed(321)), labels.numpy())
            if m["fid"] < best["fid"]:
                best, best_state, best_step = m, copy.deepcopy(ema.state_dict()), done
            print(f"stage {stage} step {done} loss {loss.item():.4f} ddim50(seed 321) {m} best step {best_step} "
                  f"{timer.minutes()} min", flush=True)
            if timer.minutes() > deadline:
                print(f"deadline: stopping after {done} steps", flush=True)
                break
    ema.load_state_dict(best_state)
    return ema.eval(), done, best_step


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stage1-from")
    p.add_argument("--stage2-from", help="a v2 export (stages 1 and 2 done): run stage 3 only, from its weights")
    args = p.parse_args()
    common.setup(4)
    timer = common.Timer()
    x, _, y, tr, _ = common.digits()
    xt, yt = torch.tensor(x[tr]).reshape(-1, 1, 8, 8), torch.tensor(y[tr])
    model = Denoiser()
    ema = Denoiser()
    ema.load_state_dict(model.state_dict())
    stage1_steps = 0 if (args.stage1_from or args.stage2_from) else STEPS
    if args.stage1_from or args.stage2_from:
        load_from_onnx(ema, args.stage1_from or args.stage2_from)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=STEPS, pct_start=0.05)
    ac = alphas_cumprod.float()
    for step in range(stage1_steps):
        loss = train_step(model, opt, xt, yt, ac, BATCH)
        sched.step()
        common.ema_update(ema, model, min(0.999, (1 + step) / (10 + step)))
        if step % 1000 == 0:
            print(f"step {step} loss {loss.item():.4f} {timer.minutes()} min", flush=True)
    ema.eval()
    stage1_minutes = timer.minutes()
    steps2_done, best_step = 0, 0
    if not args.stage2_from:
        torch.manual_seed(44)  # stage 2 draws from its own seed whether stage 1 ran here or came from the v1 export
        ema, steps2_done, best_step = stage2(ema, xt, yt, timer)
    stage2_minutes = timer.minutes()
    # stage 3 (v3): the same continuation with the lr decayed to 0 by a cosine over STEPS3 steps, from the stage-2 EMA
    torch.manual_seed(444)
    ema, steps3_done, best_step3 = stage2(ema, xt, yt, timer, stage=3, steps=STEPS3, cosine=True)
    minutes = timer.minutes()

    labels = torch.arange(10).repeat_interleave(100)
    metrics = {}
    samplers = [("ddim_50_eta0_guidance1", lambda g: ddim(ema, labels, 50, 1.0, g)),
                ("dpmpp_2m_20_guidance1", lambda g: dpmpp_2m(ema, labels, 20, 1.0, g)),
                ("ddim_20_eta0_guidance1", lambda g: ddim(ema, labels, 20, 1.0, g)),
                ("ddpm_1000_guidance1", lambda g: ddpm(ema, labels, 1.0, g))]
    for key, fn in samplers[:3]:
        s = fn(torch.Generator().manual_seed(123))
        metrics[key] = evaluate.evaluate(s, labels.numpy())
        print(key, metrics[key], flush=True)
    # the spread over sampling seeds (FID on 1,000 samples moves by points between seeds)
    seeds = {"ddim_50_eta0_guidance1": {123: metrics["ddim_50_eta0_guidance1"]}, "ddpm_1000_guidance1": {}}
    for sd in (124, 125):
        seeds["ddim_50_eta0_guidance1"][sd] = evaluate.evaluate(samplers[0][1](torch.Generator().manual_seed(sd)),
                                                                labels.numpy())
        print("ddim_50 seed", sd, seeds["ddim_50_eta0_guidance1"][sd], flush=True)
    eval_minutes = timer.minutes() - minutes

    if os.environ.get("GS_NO_EXPORT"):  # smoke tests: train and score only, leave the shipped model alone
        return
    final = os.path.join(common.MODELS, NAME)
    out = common.staging_dir(NAME)
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
    manifest = {
        "name": NAME, "family": "diffusion", "version": "3",
        "description": "Class-conditional DDPM on 8x8 handwritten digits (epsilon prediction, classifier-free guidance)",
        "output": common.IMAGE_OUTPUT,
        "conditioning": {"num_classes": 10, "labels": common.LABELS, "null_class": NULL},
        "graphs": {"denoiser": {"file": "denoiser.onnx",
                                "inputs": {"sample": "sample", "timestep": "timestep", "class_label": "class_label"},
                                "outputs": {"prediction": "prediction"}}},
        "scheduler": SCHEDULER,
        # Two sessions: on a CPU host two denoiser batches (or two halves of a >= 32-row iteration) run at once,
        # one core each; docs/benchmarks.md, issue 5.
        "batching": common.BATCHING, "instances": 2,
        "card": {**common.DATA_CARD,
                 "architecture": f"residual MLP denoiser, width {WIDTH}, {BLOCKS} blocks (LayerNorm, SiLU), "
                                 "sinusoidal timestep embedding + 11-row class embedding (row 10 = null class)",
                 "params": sum(p.numel() for p in ema.parameters()),
                 "training": (("stages 1 and 2 as in v2 (stage 1: 8000 steps, batch 128, one-cycle lr 1e-3, EMA 0.999, "
                               "label dropout 10%, seed 4; stage 2: 6000 steps, batch 256, constant lr 2e-4, EMA 0.9995, "
                               "seed 44, 38.2 + 25.25 min in the v1/v2 runs; weights taken from the v2 export); ")
                              if args.stage2_from else
                              (f"stage 1: {STEPS} steps, batch {BATCH}, AdamW one-cycle max lr 1e-3, EMA 0.999, "
                               f"label dropout 10%, seed 4 ("
                               + ("weights taken from the v1 export, 38.2 min in the v1 run" if args.stage1_from
                                  else f"{stage1_minutes} min") + "); "
                               f"stage 2: {steps2_done} steps, batch {BATCH2}, AdamW constant lr {LR2}, EMA {EMA2}, "
                               f"seed 44, EMA checkpoint of step {best_step} kept (DDIM-50 FID on sampling seed 321, "
                               f"scored every {EVAL_EVERY} steps; {round(stage2_minutes - stage1_minutes, 2)} min); "))
                             + f"stage 3: {steps3_done} steps, batch {BATCH2}, AdamW lr {LR2} cosine-decayed to 0, "
                             f"EMA {EMA2}, seed 444, EMA checkpoint of step {best_step3} kept (DDIM-50 FID on sampling "
                             f"seed 321, scored every {EVAL_EVERY} steps); {round(minutes - stage2_minutes, 2)} min; "
                             f"2 shared CPU cores (+{round(eval_minutes, 2)} min evaluation)",
                 "onnx_bytes": size,
                 "metrics": {
                     "sampler": "DDIM 50 steps, leading spacing, eta 0, guidance_scale 1 (no guidance), "
                                "100 samples per class, no clipping",
                     "class_accuracy": m["class_accuracy"], "fid": m["fid"], "fid_floor": m["fid_floor"],
                     "by_sampler": metrics,
                     "sampling_seeds": {k: {str(sd): v for sd, v in d.items()} for k, d in seeds.items()},
                     "evaluator": "models/training/evaluate.py"}}}
    common.write_manifest(NAME, manifest, folder=out)
    common.swap_in(out, final)
    # ancestral DDPM-1000 is the slow one (about 20x DDIM-50): the model is swapped in first, and its card gains
    # this row when it is done (model.json rewritten by an atomic rename)
    key, fn = samplers[3]
    for sd in (123, 124, 125):
        seeds[key][sd] = evaluate.evaluate(fn(torch.Generator().manual_seed(sd)), labels.numpy())
        print(key, "seed", sd, seeds[key][sd], flush=True)
    metrics[key] = seeds[key][123]
    manifest["card"]["metrics"]["sampling_seeds"] = {k: {str(sd): v for sd, v in d.items()} for k, d in seeds.items()}
    manifest["card"]["training"] += f" (+{round(timer.minutes() - minutes, 2)} min with DDPM-1000)"
    tmp = os.path.join(common.HERE, ".staging", "model.json")
    common.write_manifest(NAME, manifest, folder=os.path.dirname(tmp))
    os.replace(tmp, os.path.join(final, "model.json"))
    print("done", NAME, minutes, "min", flush=True)


if __name__ == "__main__":
    main()
