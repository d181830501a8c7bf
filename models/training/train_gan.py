"""digits-gan: class-conditional GAN (MLP generator, projection discriminator with spectral norm, hinge loss)."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import evaluate  # noqa: E402

NAME, LATENT, STEPS, BATCH = "digits-gan", 32, 4000, 128


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 32)
        self.net = nn.Sequential(
            nn.Linear(LATENT + 32, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 64), nn.Tanh())

    def forward(self, latent, class_label):
        h = torch.cat([latent, self.emb(class_label)], dim=1)
        return self.net(h).reshape(-1, 1, 8, 8)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.net = nn.Sequential(sn(nn.Linear(64, 256)), nn.LeakyReLU(0.2), sn(nn.Linear(256, 256)), nn.LeakyReLU(0.2))
        self.out = sn(nn.Linear(256, 1))
        self.proj = sn(nn.Embedding(10, 256))

    def forward(self, x, y):
        h = self.net(x.reshape(-1, 64))
        return self.out(h).squeeze(1) + (self.proj(y) * h).sum(1)


def main():
    common.setup(1)
    timer = common.Timer()
    x, _, y, tr, _ = common.digits()
    xt, yt = torch.tensor(x[tr]), torch.tensor(y[tr])
    G, D = Generator(), Discriminator()
    og = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.0, 0.9))
    od = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.0, 0.9))
    for step in range(STEPS):
        idx = torch.randint(0, len(yt), (BATCH,))
        xr, yr = xt[idx], yt[idx]
        z = torch.randn(BATCH, LATENT)
        yf = torch.randint(0, 10, (BATCH,))
        xf = G(z, yf)
        ld = F.relu(1 - D(xr, yr)).mean() + F.relu(1 + D(xf.detach(), yf)).mean()
        od.zero_grad()
        ld.backward()
        od.step()
        lg = -D(xf, yf).mean()
        og.zero_grad()
        lg.backward()
        og.step()
        if step % 1000 == 0:
            print(f"step {step} d {ld.item():.3f} g {lg.item():.3f}", flush=True)
    G.eval()
    minutes = timer.minutes()

    gen = torch.Generator().manual_seed(123)
    labels = torch.arange(10).repeat_interleave(100)
    with torch.no_grad():
        s = G(torch.randn(1000, LATENT, generator=gen), labels).reshape(1000, 64).numpy()
        # normal folded into (-2, 2) by fmod, then scaled by 0.7: close to, not exactly, the API's truncation
        zt = torch.fmod(torch.randn(1000, LATENT, generator=gen), 2.0) * 0.7
        st = G(zt, labels).reshape(1000, 64).numpy()
    m = evaluate.evaluate(s, labels.numpy())
    mt = evaluate.evaluate(st, labels.numpy())
    print("metrics", m, "truncated", mt, flush=True)

    out = os.path.join(common.MODELS, NAME)
    os.makedirs(out, exist_ok=True)
    size = common.export(G, (torch.randn(2, LATENT), torch.tensor([1, 2])), os.path.join(out, "generator.onnx"),
                         ["latent", "class_label"], ["sample"],
                         {"latent": {0: "batch"}, "class_label": {0: "batch"}, "sample": {0: "batch"}})
    g2 = torch.Generator().manual_seed(7)
    cases = [(torch.randn(1, LATENT, generator=g2), torch.tensor([3])),
             (torch.randn(5, LATENT, generator=g2), torch.tensor([0, 9, 4, 4, 7]))]
    common.write_golden(G, cases, ["latent", "class_label"], ["sample"], os.path.join(out, "golden", "generator.json"))
    common.save_grid(G(torch.randn(100, LATENT, generator=g2), torch.arange(10).repeat(10)).detach().numpy(),
                     os.path.join(common.IMG_DIR, f"{NAME}.png"))
    common.write_manifest(NAME, {
        "name": NAME, "family": "gan", "version": "1",
        "description": "Class-conditional GAN on 8x8 handwritten digits (MLP generator, 32-d latent)",
        "output": common.IMAGE_OUTPUT,
        "conditioning": {"num_classes": 10, "labels": common.LABELS},
        "latent_shape": [LATENT],
        "graphs": {"generator": {"file": "generator.onnx",
                                 "inputs": {"latent": "latent", "class_label": "class_label"},
                                 "outputs": {"sample": "sample"}}},
        "batching": common.BATCHING, "instances": 1,
        "card": {**common.DATA_CARD,
                 "architecture": f"MLP generator {LATENT}+32 (class embedding) -> 256 -> 256 -> 64 tanh; "
                                 "projection discriminator with spectral norm; hinge loss",
                 "params": sum(p.numel() for p in G.parameters()),
                 "training": f"{STEPS} steps, batch {BATCH}, Adam 2e-4 betas (0, 0.9), seed 1; "
                             f"{minutes} min on 2 CPU cores",
                 "onnx_bytes": size,
                 "metrics": {
                     "sampler": "plain normal latents (no truncation), 100 samples per class",
                     "class_accuracy": m["class_accuracy"], "fid": m["fid"], "fid_floor": m["fid_floor"],
                     "latent_fmod2_x0.7": {"class_accuracy": mt["class_accuracy"], "fid": mt["fid"]},
                     "evaluator": "models/training/evaluate.py (classifier on the train split, FID on its 64-d "
                                  "penultimate features vs the held-out split)"}}})
    print("done", NAME, minutes, "min", flush=True)


if __name__ == "__main__":
    main()
