"""Shared helpers for the GenService model training scripts.

Everything here is deterministic given the seeds: the data split, the ONNX export
and the golden input/output pairs that the C# parity test replays through ONNX Runtime.
"""
import json
import os
import random
import time

import numpy as np
import onnx
import torch
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
REPO = os.path.dirname(MODELS)
EVAL_DIR = os.path.join(HERE, "eval")
IMG_DIR = os.path.join(REPO, "docs", "img")
SPLIT_SEED = 20240601
LABELS = [str(i) for i in range(10)]

BATCHING = {"max_batch_size": 64, "max_queue_delay_ms": 2, "max_queue_size": 1024}
IMAGE_OUTPUT = {"kind": "image", "shape": [1, 8, 8], "range": [-1.0, 1.0]}
DATA_CARD = {
    "training_data": "scikit-learn load_digits (UCI optical recognition of handwritten digits, 1,797 8x8 images, "
                     "17 grey levels 0..16), pixel v mapped to v/8 - 1",
    "split": "fixed seeded 80/20 split (seed 20240601): 1,437 train / 360 held-out; indices in "
             "models/training/eval/split.json; only the train split is used for training",
    "licence": "weights: MIT (this project); data: UCI ML repository digits, CC BY 4.0",
}


def setup(seed):
    """Fix every seed and keep to the two shared cores (GS_THREADS=1 when two trainings run side by side:
    oversubscribed OpenMP threads make these tiny models many times slower)."""
    torch.set_num_threads(int(os.environ.get("GS_THREADS", "1")))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def digits():
    """(x [N,64] float32 in [-1,1], levels [N,64] int64 0..16, y [N] int64, train_idx, heldout_idx)."""
    d = load_digits()
    levels = d.data.astype(np.int64)
    x = (levels / 8.0 - 1.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(SPLIT_SEED).permutation(len(y))
    n_train = int(round(0.8 * len(y)))
    train_idx = np.sort(perm[:n_train])
    heldout_idx = np.sort(perm[n_train:])
    path = os.path.join(EVAL_DIR, "split.json")
    if not os.path.exists(path):
        os.makedirs(EVAL_DIR, exist_ok=True)
        with open(path, "w") as f:
            json.dump({"seed": SPLIT_SEED, "train": train_idx.tolist(), "heldout": heldout_idx.tolist()}, f)
    return x, levels, y, train_idx, heldout_idx


@torch.no_grad()
def ema_update(ema, model, decay):
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter (the digits trainers' weight EMA)."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(decay).add_(pm, alpha=1 - decay)


def export(module, args, path, input_names, output_names, dynamic_axes):
    """Export with opset 17 and check the graph; returns the file size in bytes."""
    module.eval()
    torch.onnx.export(module, args, path, opset_version=17, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    return os.path.getsize(path)


def _tensor_json(t):
    t = t.detach().cpu()
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "dtype": "int64", "data": [int(v) for v in t.reshape(-1).tolist()]}
    t = t.float()
    return {"shape": list(t.shape), "dtype": "float32",
            # '%.9g' round-trips every float32 exactly and is half the size of a double's repr
            "data": [float("%.9g" % v) for v in t.reshape(-1).tolist()]}


def write_golden(module, cases, input_names, output_names, path):
    """Run each case (a tuple of tensors in input_names order) through PyTorch and store inputs and outputs."""
    module.eval()
    out_cases = []
    with torch.no_grad():
        for args in cases:
            outs = module(*args)
            if not isinstance(outs, (tuple, list)):
                outs = (outs,)
            outs = list(outs)
            assert len(outs) == len(output_names)
            out_cases.append({
                "inputs": {n: _tensor_json(a) for n, a in zip(input_names, args)},
                "outputs": {n: _tensor_json(o) for n, o in zip(output_names, outs)},
            })
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"cases": out_cases}, f, separators=(",", ":"))
    size = os.path.getsize(path)
    assert size < 300_000, f"{path} is {size} bytes"


def write_manifest(name, manifest, folder=None):
    path = os.path.join(folder or os.path.join(MODELS, name), "model.json")
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def staging_dir(name):
    """A fresh folder to export a model into before swap_in: models/training/.staging/<name> (same file system,
    not a model folder the service scans)."""
    path = os.path.join(HERE, ".staging", name)
    if os.path.isdir(path):
        import shutil
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def swap_in(staging, final):
    """Move a complete export into models/<name>/ file by file with os.replace (atomic per file), graphs and
    goldens first and model.json last, so readers never see a half-written file."""
    files = []
    for root, _, names in os.walk(staging):
        for n in names:
            files.append(os.path.relpath(os.path.join(root, n), staging))
    files.sort(key=lambda f: f == "model.json")
    for f in files:
        dst = os.path.join(final, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(os.path.join(staging, f), dst)
    import shutil
    shutil.rmtree(staging)


def save_grid(samples, path, nrow=10, scale=4):
    """samples [N,64] in [-1,1] -> a PNG grid (rows of nrow), clipped like the service's PNGs."""
    from PIL import Image
    s = np.clip(np.asarray(samples).reshape(-1, 8, 8), -1, 1)
    n = s.shape[0]
    rows = (n + nrow - 1) // nrow
    pad = 1
    grid = np.zeros((rows * (8 + pad) + pad, nrow * (8 + pad) + pad), dtype=np.uint8)
    grid[:] = 64
    for i in range(n):
        r, c = divmod(i, nrow)
        img = ((s[i] + 1) / 2 * 255).round().astype(np.uint8)
        grid[pad + r * (8 + pad): pad + r * (8 + pad) + 8, pad + c * (8 + pad): pad + c * (8 + pad) + 8] = img
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(path)


class Timer:
    def __init__(self):
        self.t0 = time.time()

    def minutes(self):
        return round((time.time() - self.t0) / 60.0, 2)
