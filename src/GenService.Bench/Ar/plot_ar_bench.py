"""Plots the AR scheduling benchmark (docs/benchmarks.md, "2. AR: tokens/s and time to first token").

Reads the --out JSON of `GenService.Bench ar`; writes docs/img/bench-ar.png: per model, tokens/s and time to first
token (p50 solid, p99 dashed) against concurrency, iteration-level vs request-level scheduling.
Run: /usr/bin/python3 src/GenService.Bench/Ar/plot_ar_bench.py --ar ar.json
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODES = ["request", "iteration"]
COLORS = {"request": "#888888", "iteration": "#1f77b4"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ar", required=True)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "img", "bench-ar.png"))
    args = parser.parse_args()
    with open(args.ar) as f:
        report = json.load(f)
    models = [k for k in report if isinstance(report[k], dict)]
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.8 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for mode in [m for m in MODES if m in report[model]]:
            cells = report[model][mode]
            cs = [c["concurrency"] for c in cells]
            ax = axes[row][0]
            ax.plot(cs, [c["tokens_per_s"] for c in cells], "o-", color=COLORS[mode], label=f"{mode}-level")
            for c in cells:
                ax.scatter([c["concurrency"]] * len(c["runs_tokens_per_s"]), c["runs_tokens_per_s"],
                           color=COLORS[mode], s=6, alpha=0.5)
            ax = axes[row][1]
            ax.plot(cs, [c["ttft_p50_ms"] for c in cells], "o-", color=COLORS[mode], label=f"{mode}-level p50")
            ax.plot(cs, [c["ttft_p99_ms"] for c in cells], "o--", color=COLORS[mode], alpha=0.6,
                    label=f"{mode}-level p99")
        for col, title, ylabel in [(0, "throughput", "generated tokens/s (median run; dots = runs)"),
                                   (1, "time to first token", "ms, log scale")]:
            ax = axes[row][col]
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients (closed loop, 1 streamed sample each)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{model}: {title}", fontsize=10)
            ax.legend(fontsize=7)
            if col == 1:
                ax.set_yscale("log")
    fig.suptitle("AR scheduling, iteration-level vs request-level; 2 CPU cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
