"""Plots the diffusion scheduling benchmarks (docs/benchmarks.md, "Iteration-level batching").

Reads the --out JSON files of `GenService.Bench diffusion mixed|batching|e2e` and the last line of
torch_ddim_baseline.py's output; writes docs/img/bench-diffusion-mixed.png and docs/img/bench-diffusion-batching.png
(--out-dir and --tag change the folder and add "-TAG" to the names, for another round's plots).
Run: /usr/bin/python3 src/GenService.Bench/Diffusion/plot_diffusion_bench.py --mixed mixed.json --batching batching.json \
        --e2e e2e.json --torch torch.log
"""
import argparse
import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODES = ["request", "iteration"]
COLORS = {"request": "#888888", "iteration": "#1f77b4"}


def median_latency(runs, steps, q):
    return statistics.median(r[f"steps_{steps}"][q] for r in runs if f"steps_{steps}" in r)


def plot_mixed(mixed, out):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for i, m in enumerate(MODES):
        runs = [mixed[k]["req_per_s"] for k in sorted(mixed) if k.startswith(f"capacity_{m}_")]
        ax.bar(i, mixed[f"capacity_{m}"], color=COLORS[m], label=f"{m}-level")
        ax.scatter([i] * len(runs), runs, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(MODES)), [f"{m}-level" for m in MODES])
    ax.set_ylabel("requests/s (median of runs; dots = runs)")
    ax.set_title("Capacity, closed loop (64 clients, 10/50/250-step mix)", fontsize=9)
    for j, basis in enumerate(["request", "iteration"]):
        ax = axes[j + 1]
        key = f"open_{basis}_"
        rate = mixed[key + "request"]["rate"]
        width = 0.2
        for i, m in enumerate(MODES):
            runs = mixed[key + m]["runs"]
            for k, q in enumerate(["p50_ms", "p99_ms"]):
                xs = [s + (i * 2 + k - 1.5) * width for s in range(3)]
                ys = [median_latency(runs, steps, q) for steps in (10, 50, 250)]
                ax.bar(xs, ys, width, color=COLORS[m], alpha=1.0 if q == "p50_ms" else 0.45,
                       label=f"{m}-level {q[:3]}")
        ax.set_yscale("log")
        ax.set_xticks(range(3), ["10 steps", "50 steps", "250 steps"])
        ax.set_ylabel("latency ms (median of runs), log scale")
        ax.set_title(f"Open loop, Poisson {rate:.0f} req/s (70% of {basis}-level capacity)", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("digits-ddpm, DDIM, 1 sample per request; 2 CPU cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


def plot_batching(batching, e2e, torch_ms, out):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    labels, values, colors = [], [], []
    for m in ["iteration", "request"]:
        for b in (64, 1):
            labels.append(f"{m}\nmax batch {b}")
            values.append(batching[f"{m}_batch{b}"])
            colors.append(COLORS[m] if b == 64 else "#dddddd")
    ax.bar(range(len(values)), values, color=colors, edgecolor="black")
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set_ylabel("requests/s = samples/s (median of runs)")
    ax.set_title("64 clients x 1 sample of 50-step DDIM: batching on vs off", fontsize=9)
    ax = axes[1]
    names = ["PyTorch eager\n(torch 1.13, 2 threads)", "service\nrequest-level", "service\niteration-level"]
    vals = [torch_ms, e2e["e2e_request_ms"], e2e["e2e_iteration_ms"]]
    ax.bar(range(3), vals, color=["#d62728", COLORS["request"], COLORS["iteration"]])
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.0f} ms", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(range(3), names, fontsize=8)
    ax.set_ylabel("wall ms for 64 samples x 50 DDIM steps (median), log")
    ax.set_title("End to end vs the PyTorch eager loop", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mixed")
    p.add_argument("--batching")
    p.add_argument("--e2e")
    p.add_argument("--torch")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "docs", "img"))
    p.add_argument("--tag", default="")
    a = p.parse_args()
    img = a.out_dir
    tag = f"-{a.tag}" if a.tag else ""
    if a.mixed:
        with open(a.mixed) as f:
            plot_mixed(json.load(f), os.path.join(img, f"bench-diffusion-mixed{tag}.png"))
    if a.batching and a.e2e and a.torch:
        with open(a.batching) as f:
            batching = json.load(f)
        with open(a.e2e) as f:
            e2e = json.load(f)
        with open(a.torch) as f:
            torch_ms = json.loads(f.read().strip().splitlines()[-1])["median_ms"]
        plot_batching(batching, e2e, torch_ms, os.path.join(img, f"bench-diffusion-batching{tag}.png"))


if __name__ == "__main__":
    main()
