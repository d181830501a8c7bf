"""PyTorch eager baseline for the end-to-end diffusion benchmark (docs/benchmarks.md, "Iteration-level batching").

64 samples of 50-step DDIM (eta 0, leading spacing, no guidance) on digits-ddpm, as models/training/train_ddpm.py's
own `ddim` loop does it: eager PyTorch, one forward per step for the 64 rows, x kept in float64.
The training run saves no PyTorch checkpoint, so the weights are read from the exported ONNX graph's initializers
(named like the module's state_dict) into the same architecture, and checked against the golden input/output
pairs PyTorch wrote at export time (max abs diff printed; must be <= 1e-4).

Run: /usr/bin/python3 src/GenService.Bench/Diffusion/torch_ddim_baseline.py [--runs 5] [--threads 2]
"""
import argparse
import json
import math
import os
import statistics
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODEL = os.path.join(ROOT, "models", "digits-ddpm")


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.l1 = nn.Linear(width, width)
        self.l2 = nn.Linear(width, width)

    def forward(self, h, cond):
        return h + self.l2(F.silu(self.l1(F.silu(self.norm(h))) + cond))


class Denoiser(nn.Module):
    """models/training/train_ddpm.py's Denoiser (width and depth read from the weights)."""

    def __init__(self, width, blocks):
        super().__init__()
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(64, dtype=torch.float32) / 64))
        self.t_mlp = nn.Sequential(nn.Linear(128, width), nn.SiLU(), nn.Linear(width, width))
        self.c_emb = nn.Embedding(11, width)
        self.inp = nn.Linear(64, width)
        self.blocks = nn.ModuleList([Block(width) for _ in range(blocks)])
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, 64)

    def forward(self, sample, timestep, class_label):
        a = timestep.to(torch.float32)[:, None] * self.freqs[None, :]
        cond = self.t_mlp(torch.cat([torch.sin(a), torch.cos(a)], dim=1)) + self.c_emb(class_label)
        h = self.inp(sample.reshape(-1, 64))
        for b in self.blocks:
            h = b(h, cond)
        return self.out(F.silu(self.out_norm(h))).reshape(-1, 1, 8, 8)


def load():
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(os.path.join(MODEL, "denoiser.onnx")).graph.initializer}
    width = weights["inp.weight"].shape[0]
    blocks = len({k.split(".")[1] for k in weights if k.startswith("blocks.")})
    model = Denoiser(width, blocks)
    state = {k: v for k, v in weights.items() if k in model.state_dict()}
    missing = set(model.state_dict()) - set(state) - {"freqs"}
    assert not missing, f"weights missing from the ONNX graph: {missing}"
    model.load_state_dict(state, strict=False)
    model.eval()
    with open(os.path.join(MODEL, "golden", "denoiser.json")) as f:
        cases = json.load(f)["cases"]
    worst = 0.0
    with torch.no_grad():
        for c in cases:
            i = c["inputs"]
            x = torch.tensor(i["sample"]["data"], dtype=torch.float32).reshape(i["sample"]["shape"])
            t = torch.tensor(i["timestep"]["data"], dtype=torch.int64)
            y = torch.tensor(i["class_label"]["data"], dtype=torch.int64)
            want = np.array(c["outputs"]["prediction"]["data"], dtype=np.float32)
            worst = max(worst, float(np.abs(model(x, t, y).numpy().ravel() - want).max()))
    assert worst <= 1e-4, f"weights do not reproduce the golden outputs (max abs diff {worst})"
    return model, worst


@torch.no_grad()
def ddim(model, y, steps, alphas_cumprod, gen, T=1000):
    x = torch.randn(len(y), 1, 8, 8, generator=gen, dtype=torch.float64)
    ratio = T // steps
    for t in (np.arange(0, steps) * ratio).round()[::-1].astype(np.int64):
        prev = t - ratio
        a_t = alphas_cumprod[t]
        a_prev = alphas_cumprod[prev] if prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
        e = model(x.float(), torch.full((len(y),), int(t), dtype=torch.int64), y).double()
        x0 = (x - (1 - a_t).sqrt() * e) / a_t.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e
    return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, worst = load()
    with open(os.path.join(MODEL, "model.json")) as f:
        s = json.load(f)["scheduler"]
    betas = torch.linspace(s["beta_start"], s["beta_end"], s["num_train_timesteps"], dtype=torch.float64)
    acp = torch.cumprod(1 - betas, 0)
    y = torch.full((args.samples,), 3, dtype=torch.int64)
    for _ in range(2):
        ddim(model, y, args.steps, acp, torch.Generator().manual_seed(0))
    times = []
    for r in range(args.runs):
        t0 = time.perf_counter()
        ddim(model, y, args.steps, acp, torch.Generator().manual_seed(r))
        times.append((time.perf_counter() - t0) * 1000)
        print(f"run {r + 1}: {times[-1]:.1f} ms", flush=True)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "golden_max_abs_diff": worst,
                      "samples": args.samples, "steps": args.steps, "runs_ms": [round(t, 1) for t in times],
                      "median_ms": round(statistics.median(times), 1)}))


if __name__ == "__main__":
    main()
