"""digits-flow: class-conditional RealNVP (affine couplings on 64 dims), exact likelihood, uniform dequantization.

Data space is [-1, 1] with grid step 0.125 (bin_width). Training dequantizes each pixel with centred uniform
noise inside its bin, x + (u - 1/2) * 0.125, so the continuous density integrated over a bin approximates the
probability of the discrete value; bits/dim follow docs/model-contract.md: -(log p(x) + D ln w) / (D ln 2).

v2: v1 trained 200 epochs and over-fitted (held-out 4.17 bits/dim against 1.18 on train; 2.08 after 25 epochs).
v2 carves a validation subset (VAL_FRACTION of the train split, seeded) out of the TRAIN split, trains on the
rest and keeps the epoch with the best validation bits/dim (early stopping, patience PATIENCE epochs). The
held-out split is never looked at until the final report.

v2 settings, chosen on the validation subset (point bits/dim; held-out split unseen): with the v1 coupling nets
(hidden 128, no dropout) early stopping alone reached 2.05 validation; hidden 64 or 96, weight decay 1e-4 or 1e-3
gave 2.02-2.12; dropout in the coupling nets helped most (hidden 128 + 0.2: 1.99 in 80 epochs, still falling at the
last epoch, hence 150; hidden 256 + 0.3 reached 1.90 but its two graphs are 9.5 MB, over the 5 MB per model folder).
"""
import copy
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import evaluate  # noqa: E402

NAME, EPOCHS, BATCH, HIDDEN, DROPOUT = "digits-flow", 150, 128, 128, 0.2
VAL_FRACTION, VAL_SEED, PATIENCE = 0.15, 33, 15
BIN = 0.125
D = 64


def masks():
    ii, jj = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    cb = ((ii + jj) % 2 == 0)
    top = ii < 4
    left = jj < 4
    seq = [cb, ~cb, top, ~top, cb, ~cb, left, ~left, cb, ~cb]
    return torch.tensor(np.stack([m.reshape(-1) for m in seq]).astype(np.float32))


class Coupling(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(nn.Linear(D + 16, HIDDEN), nn.SiLU(), nn.Dropout(DROPOUT), nn.Linear(HIDDEN, HIDDEN),
                                 nn.SiLU(), nn.Dropout(DROPOUT), nn.Linear(HIDDEN, 2 * D))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(D))

    def st(self, xm, e):
        s, t = self.net(torch.cat([xm, e], dim=1)).chunk(2, dim=1)
        inv = 1 - self.mask
        # tanh bounds the log-scale so a single coupling cannot blow up the inverse
        return self.scale * torch.tanh(s) * inv, t * inv

    def forward(self, x, e):
        s, t = self.st(x * self.mask, e)
        return x * torch.exp(s) + t, s.sum(1)

    def inverse(self, y, e):
        s, t = self.st(y * self.mask, e)
        return (y - t) * torch.exp(-s)


class Flow(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 16)
        self.layers = nn.ModuleList([Coupling(m) for m in masks()])
        # an element-wise affine first (like ActNorm), initialised to whiten the data roughly
        self.log_a = nn.Parameter(torch.zeros(D))
        self.b = nn.Parameter(torch.zeros(D))

    def forward_flow(self, x, y):
        e = self.emb(y)
        h = (x.reshape(-1, D) + self.b) * torch.exp(self.log_a)
        log_det = self.log_a.sum() + torch.zeros_like(h[:, 0])
        for layer in self.layers:
            h, ld = layer(h, e)
            log_det = log_det + ld
        return h, log_det

    def inverse_flow(self, z, y):
        e = self.emb(y)
        h = z.reshape(-1, D)
        for layer in reversed(self.layers):
            h = layer.inverse(h, e)
        return h * torch.exp(-self.log_a) - self.b

    def log_prob(self, x, y):
        z, ld = self.forward_flow(x, y)
        return -0.5 * (z ** 2).sum(1) - 0.5 * D * math.log(2 * math.pi) + ld


class ForwardGraph(nn.Module):
    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, sample, class_label):
        z, ld = self.flow.forward_flow(sample, class_label)
        return z.reshape(-1, 1, 8, 8), ld


class InverseGraph(nn.Module):
    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, latent, class_label):
        return self.flow.inverse_flow(latent, class_label).reshape(-1, 1, 8, 8)


def bpd(log_p):
    return float((-(log_p + D * math.log(BIN)) / (D * math.log(2))).mean())


def main():
    common.setup(3)
    timer = common.Timer()
    x, _, y, tr, ho = common.digits()
    perm_v = np.random.RandomState(VAL_SEED).permutation(len(tr))
    n_val = int(round(VAL_FRACTION * len(tr)))
    va, tr = np.sort(tr[perm_v[:n_val]]), np.sort(tr[perm_v[n_val:]])
    xt, yt = torch.tensor(x[tr]), torch.tensor(y[tr])
    xv, yv = torch.tensor(x[va]), torch.tensor(y[va])
    xh, yh = torch.tensor(x[ho]), torch.tensor(y[ho])
    flow = Flow()
    with torch.no_grad():
        flow.b.copy_(-xt.mean(0))
        flow.log_a.copy_(-torch.log(xt.std(0) + 0.1))
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    best_val, best_state, best_epoch = float("inf"), None, -1
    for epoch in range(EPOCHS):
        flow.train()
        perm = torch.randperm(len(yt))
        for i in range(0, len(yt), BATCH):
            idx = perm[i:i + BATCH]
            xb = xt[idx] + (torch.rand(len(idx), D) - 0.5) * BIN
            loss = -flow.log_prob(xb, yt[idx]).mean() / D
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            opt.step()
        sched.step()
        flow.eval()
        with torch.no_grad():
            val = bpd(flow.log_prob(xv, yv))  # point evaluation, the formula the service reports
        if val < best_val:
            best_val, best_state, best_epoch = val, copy.deepcopy(flow.state_dict()), epoch
        print(f"epoch {epoch} train {loss.item():.3f} val bpd {val:.3f} best epoch {best_epoch}", flush=True)
        if epoch - best_epoch >= PATIENCE:
            break
    epochs_run = epoch + 1
    flow.load_state_dict(best_state)
    flow.eval()
    minutes = timer.minutes()
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        deq = np.mean([bpd(flow.log_prob(xh + (torch.rand(xh.shape, generator=g) - 0.5) * BIN, yh)) for _ in range(10)])
        point = bpd(flow.log_prob(xh, yh))
        train_point = bpd(flow.log_prob(xt, yt))
        gen = torch.Generator().manual_seed(123)
        labels = torch.arange(10).repeat_interleave(100)
        metrics = {}
        for temp in (1.0, 0.8, 0.6):
            s = flow.inverse_flow(torch.randn(1000, D, generator=gen) * temp, labels).numpy()
            metrics[f"temperature_{temp}"] = evaluate.evaluate(s, labels.numpy())
        # the spread over sampling seeds at the recommended temperature (seed 123 above is the first of them)
        seeds = {"123": metrics["temperature_0.8"]}
        for sd in (124, 125):
            s = flow.inverse_flow(torch.randn(1000, D, generator=torch.Generator().manual_seed(sd)) * 0.8, labels)
            seeds[str(sd)] = evaluate.evaluate(s.numpy(), labels.numpy())
    print("metrics", metrics, "seeds", seeds, "bpd", deq, point, train_point, "val", best_val, "epoch", best_epoch,
          flush=True)
    if os.environ.get("GS_NO_EXPORT"):  # smoke tests: train and score only, leave the shipped model alone
        return

    final = os.path.join(common.MODELS, NAME)
    out = common.staging_dir(NAME)
    fwd, inv = ForwardGraph(flow), InverseGraph(flow)
    dyn = {"sample": {0: "batch"}, "class_label": {0: "batch"}, "latent": {0: "batch"}, "log_det": {0: "batch"}}
    size_f = common.export(fwd, (torch.randn(2, 1, 8, 8), torch.tensor([1, 2])), os.path.join(out, "forward.onnx"),
                           ["sample", "class_label"], ["latent", "log_det"], dyn)
    size_i = common.export(inv, (torch.randn(2, 1, 8, 8), torch.tensor([1, 2])), os.path.join(out, "inverse.onnx"),
                           ["latent", "class_label"], ["sample"],
                           {"latent": {0: "batch"}, "class_label": {0: "batch"}, "sample": {0: "batch"}})
    g2 = torch.Generator().manual_seed(7)
    xe = xh[:5].reshape(-1, 1, 8, 8)
    common.write_golden(fwd, [(xe[:1], yh[:1]), (xe, yh[:5])], ["sample", "class_label"], ["latent", "log_det"],
                        os.path.join(out, "golden", "forward.json"))
    common.write_golden(inv, [(torch.randn(1, 1, 8, 8, generator=g2) * 0.8, torch.tensor([2])),
                              (torch.randn(4, 1, 8, 8, generator=g2) * 0.8, torch.tensor([6, 7, 8, 9]))],
                        ["latent", "class_label"], ["sample"], os.path.join(out, "golden", "inverse.json"))
    with torch.no_grad():
        common.save_grid(flow.inverse_flow(torch.randn(100, D, generator=g2) * 0.8, torch.arange(10).repeat(10)).numpy(),
                         os.path.join(common.IMG_DIR, f"{NAME}.png"))
    m = metrics["temperature_0.8"]
    common.write_manifest(NAME, {
        "name": NAME, "family": "flow", "version": "2",
        "description": "Class-conditional RealNVP flow on 8x8 handwritten digits (10 affine couplings)",
        "output": common.IMAGE_OUTPUT,
        "conditioning": {"num_classes": 10, "labels": common.LABELS},
        "latent_shape": [1, 8, 8],
        "likelihood": {"bin_width": BIN},
        "graphs": {
            "forward": {"file": "forward.onnx", "inputs": {"sample": "sample", "class_label": "class_label"},
                        "outputs": {"latent": "latent", "log_det": "log_det"}},
            "inverse": {"file": "inverse.onnx", "inputs": {"latent": "latent", "class_label": "class_label"},
                        "outputs": {"sample": "sample"}}},
        "batching": common.BATCHING, "instances": 1,
        "card": {**common.DATA_CARD,
                 "architecture": f"element-wise affine + 10 RealNVP affine couplings (checkerboard, top/bottom, "
                                 f"left/right masks), MLP 64+16 -> {HIDDEN} -> {HIDDEN} -> 128 (dropout {DROPOUT} in "
                                 "training) with a 16-d class embedding, tanh-bounded log-scales",
                 "params": sum(p.numel() for p in flow.parameters()),
                 "training": f"early stopping: kept epoch {best_epoch + 1} of {epochs_run} (cosine schedule over "
                             f"{EPOCHS}, patience {PATIENCE}) by point bits/dim on a validation subset of "
                             f"{len(va)} digits carved from the train split (seed {VAL_SEED}; trained on the other "
                             f"{len(tr)}), batch {BATCH}, Adam 1e-3, centred uniform dequantization (bin {BIN}), "
                             f"seed 3; {minutes} min on 2 shared CPU cores",
                 "onnx_bytes": size_f + size_i,
                 "metrics": {
                     "heldout_bits_per_dim": round(point, 4),
                     "heldout_bits_per_dim_note": "point evaluation at the bin centres, the service's formula "
                                                  "-(log p(x) + 64 ln 0.125) / (64 ln 2)",
                     "heldout_bits_per_dim_dequantized": round(float(deq), 4),
                     "train_bits_per_dim": round(train_point, 4),
                     "validation_bits_per_dim": round(best_val, 4),
                     "sampler": "latent ~ N(0, I) * temperature 0.8, 100 per class (recommended default 0.8)",
                     "class_accuracy": m["class_accuracy"], "fid": m["fid"], "fid_floor": m["fid_floor"],
                     "temperature_1.0": metrics["temperature_1.0"], "temperature_0.6": metrics["temperature_0.6"],
                     "sampling_seeds_temperature_0.8": seeds,
                     "evaluator": "models/training/evaluate.py"}}}, folder=out)
    common.swap_in(out, final)
    print("done", NAME, minutes, "min", flush=True)


if __name__ == "__main__":
    main()
