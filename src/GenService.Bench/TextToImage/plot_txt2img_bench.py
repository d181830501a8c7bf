"""Plots the text-to-image benchmarks (docs/benchmarks.md, "Text-to-image (issue 13)").

Reads the --out JSON files of `GenService.Bench txt2img load|mixed|scalar` and the last line (JSON) of
torch_txt2img_baseline.py's output; writes docs/img/bench-txt2img-load.png (requests/s and latency against
concurrency, with the PyTorch baselines at 16 clients) and docs/img/bench-txt2img-mixed.png (capacity and open-loop
latency per step class: iteration- vs request-level, [batch] vs scalar timestep). --out-dir and --tag as in
plot_diffusion_bench.py.
Run: /usr/bin/python3 src/GenService.Bench/TextToImage/plot_txt2img_bench.py --load load.json --torch torch.log \
        --mixed mixed.json --scalar scalar.json
"""
import argparse
import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
STEPS = (10, 25, 50)
COLORS = {"request": "#888888", "iteration": "#1f77b4", "batch-iteration": "#1f77b4", "scalar-iteration": "#ff7f0e",
          "batch-request": "#888888", "scalar-request": "#c7a27a"}


def plot_load(load, torch_summary, out):
    cs = sorted(int(k[1:]) for k in load if k.startswith("c") and k[1:].isdigit())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    med = [load[f"c{c}"]["median_req_per_s"] for c in cs]
    ax.plot(cs, med, "o-", color=COLORS["iteration"], label="GenService (median of runs)")
    for c in cs:
        runs = [r["req_per_s"] for r in load[f"c{c}"]["runs"]]
        ax.scatter([c] * len(runs), runs, color="black", s=10, zorder=3)
    if torch_summary:
        clients = torch_summary["clients"]
        for mode, color, label in (("plain", "#d62728", "PyTorch eager, one request at a time"),
                                   ("batched", "#9467bd", f"PyTorch eager, {clients} requests batched")):
            ax.scatter([clients], [torch_summary[mode]["median_req_per_s"]], marker="s", color=color, s=40,
                       zorder=4, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(cs, [str(c) for c in cs])
    ax.set_xlabel("concurrent clients (closed loop)")
    ax.set_ylabel("requests/s = images/s (log)")
    ax.set_title("Throughput, 1 image per request, PNDM 50 steps, guidance 7.5", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    for q, style in (("p50_ms", "o-"), ("p99_ms", "o--")):
        ys = [load[f"c{c}"]["median_run"].get("steps_0", {}).get(q) for c in cs]
        ax.plot(cs, ys, style, color=COLORS["iteration"], label=f"GenService {q[:3]}")
    if torch_summary:
        clients = torch_summary["clients"]
        for mode, color in (("plain", "#d62728"), ("batched", "#9467bd")):
            ax.scatter([clients], [torch_summary[mode]["p50_ms"]], marker="s", color=color, s=40, zorder=4,
                       label=f"PyTorch {mode} p50")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(cs, [str(c) for c in cs])
    ax.set_xlabel("concurrent clients (closed loop)")
    ax.set_ylabel("latency ms (median run), log")
    ax.set_title("Latency", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle("digits-txt2img (32x32 RGB, latents 4x8x8); 2 CPU cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


def variants(doc):
    return [k[len("capacity_"):] for k in doc if k.startswith("capacity_") and not k.endswith("_runs")]


def plot_mixed(docs, out):
    names, caps, runs = [], [], []
    open_rows = []
    for doc in docs:
        for v in variants(doc):
            label = f"{v} ({doc['scenario']} run)"
            names.append(label)
            caps.append(doc[f"capacity_{v}"])
            runs.append([r["req_per_s"] for r in doc[f"capacity_{v}_runs"]])
            if f"open_{v}" in doc:
                open_rows.append((label, v, doc[f"open_{v}"]))
    fig, axes = plt.subplots(1, 1 + len(docs), figsize=(5.5 * (1 + len(docs)), 4.4))
    ax = axes[0]
    for i, (n, c, r) in enumerate(zip(names, caps, runs)):
        ax.bar(i, c, color=COLORS.get(n.split(" ")[0], "#aaaaaa"))
        ax.text(i, c, f"{c:.1f}", ha="center", va="bottom", fontsize=7)
        ax.scatter([i] * len(r), r, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(names)), [n.replace("-", "\n", 1).replace(" (", "\n(") for n in names], fontsize=7)
    ax.set_ylabel("requests/s (median of runs; dots = runs)")
    ax.set_title("Capacity, closed loop, 10/25/50-step mix", fontsize=9)
    for j, doc in enumerate(docs):
        ax = axes[j + 1]
        rows = [(label, v, o) for (label, v, o) in open_rows if f"open_{v}" in doc and doc[f"open_{v}"] is o]
        width = 0.8 / (2 * len(rows))
        for i, (label, v, o) in enumerate(rows):
            for k, q in enumerate(("p50_ms", "p99_ms")):
                xs = [s + (i * 2 + k - len(rows) + 0.5) * width for s in range(len(STEPS))]
                ys = [statistics.median(r[f"steps_{s}"][q] for r in o["runs"] if f"steps_{s}" in r) for s in STEPS]
                ax.bar(xs, ys, width, color=COLORS.get(v, "#aaaaaa"), alpha=1.0 if q == "p50_ms" else 0.45,
                       label=f"{v} {q[:3]}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(STEPS)), [f"{s} steps" for s in STEPS])
        ax.set_ylabel("latency ms (median of runs), log")
        ax.set_title(f"Open loop, Poisson {doc['open_rate']:.1f} req/s ({doc['scenario']})", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("digits-txt2img, PNDM, guidance 7.5, 1 image per request; 2 CPU cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--load")
    p.add_argument("--torch")
    p.add_argument("--mixed")
    p.add_argument("--scalar")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "docs", "img"))
    p.add_argument("--tag", default="")
    a = p.parse_args()
    tag = f"-{a.tag}" if a.tag else ""
    torch_summary = None
    if a.torch:
        with open(a.torch) as f:
            torch_summary = json.loads(f.read().strip().splitlines()[-1])
    if a.load:
        with open(a.load) as f:
            plot_load(json.load(f), torch_summary, os.path.join(a.out_dir, f"bench-txt2img-load{tag}.png"))
    docs = []
    for path in (a.mixed, a.scalar):
        if path:
            with open(path) as f:
                docs.append(json.load(f))
    if docs:
        plot_mixed(docs, os.path.join(a.out_dir, f"bench-txt2img-mixed{tag}.png"))


if __name__ == "__main__":
    main()
