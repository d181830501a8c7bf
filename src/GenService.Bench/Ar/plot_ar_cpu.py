"""Plots ar_cpu_sweep.sh's CSV: tokens/s and CPU use against concurrency, one line per build (medians of the runs).

    /usr/bin/python3 src/GenService.Bench/Ar/plot_ar_cpu.py --csv sweep.csv --out docs/img/bench-ar-cpu.png [--table]

--table also prints the markdown table of medians that docs/benchmarks.md quotes.
"""
import argparse
import csv
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="words-ar, iteration-level, server in its own process, wrk client")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--cores", type=int, default=2, help="the machine's cores (box_busy is a share of them)")
    args = parser.parse_args()

    cells = defaultdict(list)
    with open(args.csv) as f:
        for row in csv.DictReader(f):
            cells[(row["build"], int(row["concurrency"]))].append(row)
    builds = list(dict.fromkeys(b for b, _ in cells))
    concurrency = sorted({c for _, c in cells})

    def median_row(rows):
        """The run with the median tokens/s, so the columns of one row stay together."""
        ordered = sorted(rows, key=lambda r: float(r["tokens_per_s"]))
        return ordered[len(ordered) // 2]

    medians = {key: median_row(rows) for key, rows in cells.items()}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, build in enumerate(builds):
        color = f"C{i}"
        xs = [c for c in concurrency if (build, c) in medians]
        left.plot(xs, [float(medians[(build, c)]["tokens_per_s"]) / 1000 for c in xs], marker="o", color=color, label=build)
        right.plot(xs, [float(medians[(build, c)]["server_cores"]) for c in xs], marker="o", color=color, label=f"{build}: server")
        right.plot(xs, [float(medians[(build, c)]["box_busy"]) * args.cores for c in xs], marker="x", linestyle="--", color=color,
                   label=f"{build}: whole box (server + wrk)")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(concurrency, [str(c) for c in concurrency])
        ax.set_xlabel("concurrent streams (C)")
        ax.grid(alpha=0.3)
        ax.legend()
    left.set_ylabel("tokens/s (thousands)")
    left.set_title("throughput")
    right.set_ylabel(f"CPU cores busy (of {args.cores})")
    right.set_ylim(0, args.cores + 0.05)
    right.set_title("CPU use")
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)

    if args.table:
        print("| C | " + " | ".join(f"{b} tokens/s | {b} p50 ms | {b} server cores | {b} box busy" for b in builds) + " |")
        print("| ---: | " + " | ".join("---: | ---: | ---: | ---:" for _ in builds) + " |")
        for c in concurrency:
            parts = []
            for b in builds:
                m = medians.get((b, c))
                if m is None:
                    parts.append("- | - | - | -")
                    continue
                parts.append(f"{float(m['tokens_per_s']):,.0f} | {float(m['p50_ms']):.1f} | {float(m['server_cores']):.2f} | {float(m['box_busy']) * 100:.0f} %")
            print(f"| {c} | " + " | ".join(parts) + " |")
        for c in concurrency:
            runs = {b: [float(r["tokens_per_s"]) for r in cells.get((b, c), [])] for b in builds}
            print(f"C {c}: " + "; ".join(f"{b} {'/'.join(f'{v:.0f}' for v in vs)}" for b, vs in runs.items()))


if __name__ == "__main__":
    main()
