"""Compares two model repositories file by file: did a retraining reproduce the shipped models?

    /usr/bin/python3 models/training/compare_exports.py models /path/to/other/clone/models

Every file under each model folder (models/training/ is skipped) is either byte-identical, or reported with what
differs: for an ONNX graph the largest absolute difference over its weights (initializers) and whether the graph
structure is the same; for a JSON file the largest absolute difference over its numbers and the keys whose
non-numeric values differ (a model card's training minutes, say). Exit status 0 when every ONNX graph's weights are
identical, 1 otherwise.
"""
import hashlib
import json
import os
import sys

import numpy as np


def files(root):
    out = set()
    for d, dirs, names in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel.split(os.sep)[0] == "training":
            dirs[:] = []
            continue
        out.update(os.path.normpath(os.path.join(rel, n)) for n in names)
    return out


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def onnx_diff(a, b):
    import onnx
    from onnx import numpy_helper
    ga, gb = onnx.load(a).graph, onnx.load(b).graph
    wa = {t.name: numpy_helper.to_array(t) for t in ga.initializer}
    wb = {t.name: numpy_helper.to_array(t) for t in gb.initializer}
    same_ops = [n.op_type for n in ga.node] == [n.op_type for n in gb.node]
    if wa.keys() != wb.keys() or any(wa[k].shape != wb[k].shape for k in wa):
        return float("inf"), same_ops
    worst = max((float(np.max(np.abs(wa[k].astype(np.float64) - wb[k].astype(np.float64)))) if wa[k].size else 0.0
                 for k in wa), default=0.0)
    return worst, same_ops


def json_diff(a, b, path="", acc=None):
    acc = acc if acc is not None else {"max_abs": 0.0, "keys": []}
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                acc["keys"].append(f"{path}/{k}")
            else:
                json_diff(a[k], b[k], f"{path}/{k}", acc)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            json_diff(x, y, f"{path}[{i}]", acc)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        acc["max_abs"] = max(acc["max_abs"], abs(float(a) - float(b)))
    elif a != b:
        acc["keys"].append(path)
    return acc


def main(a_root, b_root):
    fa, fb = files(a_root), files(b_root)
    weights_equal = True
    for rel in sorted(fa | fb):
        if rel not in fa or rel not in fb:
            print(f"{rel}: only in {a_root if rel in fa else b_root}")
            continue
        a, b = os.path.join(a_root, rel), os.path.join(b_root, rel)
        if digest(a) == digest(b):
            print(f"{rel}: identical")
        elif rel.endswith(".onnx"):
            worst, same_ops = onnx_diff(a, b)
            weights_equal &= worst == 0.0
            print(f"{rel}: differs; max |weight difference| {worst:.3g}; same operators: {same_ops}")
        elif rel.endswith(".json"):
            with open(a) as x, open(b) as y:
                d = json_diff(json.load(x), json.load(y))
            keys = ", ".join(d["keys"][:6]) + (" ..." if len(d["keys"]) > 6 else "")
            print(f"{rel}: differs; max |number difference| {d['max_abs']:.3g}; other values differ at: {keys or '-'}")
        else:
            print(f"{rel}: differs")
    return 0 if weights_equal else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
