#!/usr/bin/env python3
"""Quality vs steps for a diffusion model, measured THROUGH THE SERVICE (issue 4's benchmark).

For each sampler and step count, asks the running service for N class-conditional samples (N/10 per class,
the same seeds for every configuration so the comparison is paired), then scores them with the evaluation
classifier of models/training/evaluate.py: class accuracy (ask for c, the classifier says c) and FID on its
penultimate features against the held-out split. Writes a Markdown table and a PNG plot.

    dotnet run --project src/GenService.Api -c Release --urls http://127.0.0.1:8080 &
    /usr/bin/python3 tests/benchmarks/quality_vs_steps.py --url http://127.0.0.1:8080 --per-class 100

Needs Debian's python3-torch, python3-sklearn, python3-scipy (models/training/train_all.sh installs them) and
python3-matplotlib for the plot (`apt-get install python3-matplotlib`).
"""
import argparse
import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "training"))
import evaluate  # noqa: E402

SAMPLERS = ["ddpm", "ddim", "dpm_solver_pp", "euler", "euler_ancestral"]
STEPS = [1000, 250, 100, 50, 20, 10, 5]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def sample_config(args, sampler, steps, seed_base):
    jobs = []
    for c in range(10):
        remaining, offset = args.per_class, 0
        while remaining > 0:
            n = min(64, remaining)
            body = {"count": n, "seed": seed_base + c * 100003 + offset, "class_label": c, "steps": steps,
                    "sampler": sampler, "output": "tensor"}
            spacing = args.dpm_spacing if sampler == "dpm_solver_pp" else args.spacing
            if spacing:
                body["timestep_spacing"] = spacing
            if args.guidance != 1:
                body["guidance_scale"] = args.guidance
            jobs.append((c, body))
            remaining -= n
            offset += 1
    url = f"{args.url}/v1/diffusion/{args.model}/samples"
    t0 = time.time()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(lambda j: (j[0], post(url, j[1])), jobs))
    seconds = time.time() - t0
    xs, ys = [], []
    nfe = None
    for c, r in results:
        nfe = r.get("nfe")
        for s in r["samples"]:
            xs.append(s["data"])
            ys.append(c)
    return np.array(xs, dtype=np.float32), np.array(ys), seconds, nfe


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="digits-ddpm")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--spacing", default="", help="timestep_spacing for every sampler (default: the model's)")
    ap.add_argument("--dpm-spacing", default="trailing",
                    help="timestep_spacing for dpm_solver_pp: its leading/linspace schedules repeat timesteps at 1000 steps")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed-base", default="1000",
                    help="request seeds are seed_base + class * 100003 + chunk: another base draws another sample set; "
                         "a comma list (1000,2000,3000) scores every configuration on each set and reports the mean")
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--steps", default=",".join(map(str, STEPS)))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "quality-vs-steps"))
    args = ap.parse_args()

    ho, tr = evaluate.heldout_features()
    floor = evaluate.fid_from_features(tr, ho)
    bases = [int(b) for b in args.seed_base.split(",")]
    rows = []
    for sampler in args.samplers.split(","):
        for steps in map(int, args.steps.split(",")):
            sets = []
            for base in bases:
                x, y, seconds, nfe = sample_config(args, sampler, steps, base)
                acc = float((evaluate.predict(x) == y).mean())
                fid = evaluate.fid_from_features(evaluate.features(x), ho)
                sets.append({"seed_base": base, "n": len(y), "accuracy": acc, "fid": fid, "seconds": seconds})
                print(f"{sampler:16s} steps {steps:5d}  seeds {base}  acc {acc:.4f}  FID {fid:8.3f}  ({seconds:.1f} s)",
                      flush=True)
            # With one set the row's figures are that set's; with several, their means.
            rows.append({"sampler": sampler, "steps": steps, "nfe": nfe, "n": sets[0]["n"],
                         **{k: float(np.mean([st[k] for st in sets])) for k in ("accuracy", "fid", "seconds")},
                         "sets": sets})

    with open(args.out + ".json", "w") as f:
        json.dump({"model": args.model, "per_class": args.per_class, "guidance": args.guidance, "fid_floor": floor,
                   "seed_bases": bases, "rows": rows}, f, indent=1)

    ref = next((r for r in rows if r["sampler"] == "ddpm" and r["steps"] == 1000), None)
    many = len(bases) > 1
    lines = [f"FID floor (train vs held-out features): {floor:.3f}. {args.per_class} samples per class, "
             f"guidance {args.guidance}; timestep_spacing: {args.spacing or 'the model default'}, "
             f"dpm_solver_pp {args.dpm_spacing}. "
             + (f"Means over {len(bases)} sample sets (seed bases {', '.join(map(str, bases))}); "
                "the ratio is of the means." if many else f"Seed base {bases[0]}."), "",
             "| sampler | steps | accuracy | FID | " + ("FID per set | " if many else "") + "FID / DDPM-1000 | wall s |",
             "|---|---|---|---|" + ("---|" if many else "") + "---|---|"]
    for r in rows:
        ratio = f"{r['fid'] / ref['fid']:.2f}" if ref else "-"
        per_set = (" / ".join(f"{st['fid']:.2f}" for st in r["sets"]) + " | ") if many else ""
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['accuracy']:.4f} | {r['fid']:.3f} | {per_set}{ratio} | "
                     f"{r['seconds']:.1f} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        rs = sorted((r for r in rows if r["sampler"] == sampler), key=lambda r: r["steps"])
        lo = [r["fid"] - min(st["fid"] for st in r["sets"]) for r in rs]
        hi = [max(st["fid"] for st in r["sets"]) - r["fid"] for r in rs]
        a1.errorbar([r["steps"] for r in rs], [r["fid"] for r in rs], yerr=[lo, hi] if many else None, marker="o",
                    capsize=3, label=sampler)
        a2.plot([r["steps"] for r in rs], [r["accuracy"] for r in rs], marker="o", label=sampler)
    a1.axhline(floor, color="grey", ls="--", label="floor")
    for a, name in ((a1, "FID (classifier features)"), (a2, "class accuracy")):
        a.set_xscale("log")
        a.set_xlabel("steps")
        a.set_ylabel(name)
        a.grid(alpha=0.3)
    a1.legend()
    fig.suptitle(f"{args.model}: quality vs steps through GenService")
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=110)
    print("wrote", args.out + ".{json,md,png}")


if __name__ == "__main__":
    main()
