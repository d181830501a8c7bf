"""Evaluation asset: a small digit classifier trained on the train split, plus class accuracy and FID.

    python3 evaluate.py --train                     # (re)train models/training/eval/classifier.pt
    python3 evaluate.py samples.npy --labels y.npy  # samples [N,64] or [N,1,8,8] in [-1,1]
    python3 evaluate.py samples.json                # {"samples": [[64 floats], ...], "labels": [c, ...]}

FID is computed on the classifier's 64-d penultimate features against the held-out split
(the Inception network of the usual FID would be meaningless on 8x8 digits). The floor is
FID(train split, held-out split): what a perfect model of the data distribution would score.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CLASSIFIER_PATH = os.path.join(common.EVAL_DIR, "classifier.pt")


class DigitClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)
        self.drop = nn.Dropout(0.3)

    def features(self, x):
        x = x.reshape(-1, 1, 8, 8)
        h = F.relu(self.c1(x))
        h = F.max_pool2d(F.relu(self.c2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x):
        return self.fc2(self.drop(self.features(x)))


def train_classifier():
    common.setup(0)
    x, _, y, tr, ho = common.digits()
    xt, yt = torch.tensor(x[tr]), torch.tensor(y[tr])
    net = DigitClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for epoch in range(40):
        net.train()
        perm = torch.randperm(len(yt), generator=g)
        for i in range(0, len(yt), 64):
            idx = perm[i:i + 64]
            xb = xt[idx].reshape(-1, 1, 8, 8)
            # one-pixel random shifts: a little robustness to the small misalignments generators make
            dx, dy = [int(v) for v in torch.randint(-1, 2, (2,), generator=g)]
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(torch.tensor(x[ho])).argmax(1).numpy() == y[ho]).mean()
    torch.save(net.state_dict(), CLASSIFIER_PATH)
    print(f"classifier held-out accuracy {acc:.4f}")
    return acc


_NET = None


def classifier_loaded():
    """Whether this process has built the classifier already (building it draws from torch's global RNG)."""
    return _NET is not None


def load_classifier():
    global _NET
    if _NET is None:
        net = DigitClassifier()
        net.load_state_dict(torch.load(CLASSIFIER_PATH))
        net.eval()
        _NET = net
    return _NET


def features(samples):
    with torch.no_grad():
        return load_classifier().features(torch.as_tensor(np.asarray(samples, dtype=np.float32))).numpy().astype(np.float64)


def predict(samples):
    with torch.no_grad():
        return load_classifier()(torch.as_tensor(np.asarray(samples, dtype=np.float32))).argmax(1).numpy()


def fid_from_features(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + eps).dot(s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def heldout_features():
    x, _, _, tr, ho = common.digits()
    return features(x[ho]), features(x[tr])


def fid_floor():
    ho, tr = heldout_features()
    return fid_from_features(tr, ho)


def evaluate(samples, labels=None):
    """samples: [N,64] (or [N,1,8,8]) in [-1,1]; labels: requested classes or None."""
    s = np.asarray(samples, dtype=np.float32).reshape(-1, 64)
    ho, tr = heldout_features()
    out = {"n": int(len(s)), "fid": round(fid_from_features(features(s), ho), 3),
           "fid_floor": round(fid_from_features(tr, ho), 3)}
    if labels is not None:
        out["class_accuracy"] = round(float((predict(s) == np.asarray(labels)).mean()), 4)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("samples", nargs="?")
    p.add_argument("--labels")
    p.add_argument("--train", action="store_true")
    a = p.parse_args()
    if a.train:
        train_classifier()
        print(json.dumps({"fid_floor": round(fid_floor(), 3)}))
        return
    torch.set_num_threads(2)
    labels = None
    if a.samples.endswith(".json"):
        with open(a.samples) as f:
            d = json.load(f)
        samples, labels = d["samples"], d.get("labels")
    else:
        samples = np.load(a.samples)
    if a.labels:
        labels = np.load(a.labels) if a.labels.endswith(".npy") else json.load(open(a.labels))
    print(json.dumps(evaluate(samples, labels)))


if __name__ == "__main__":
    main()
