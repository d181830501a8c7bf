"""digits-gan v2: class-conditional GAN (MLP generator; spectral-norm projection discriminator with an auxiliary
classifier head), hinge loss + AC-GAN cross-entropy, two-time-scale Adam, EMA of the generator weights.

v1 (plain hinge + projection, equal learning rates, raw G, 4,000 steps) partly collapsed: 79% class accuracy,
FID 103. The auxiliary classification loss pushes every sample towards a recognisable digit of its class, TTUR
(lr_D 4e-4, lr_G 1e-4) keeps D ahead without collapsing G, and the EMA generator averages out the oscillation of
adversarial training; it is the EMA weights that are exported. Checkpoints of the EMA generator are scored every
EVAL_EVERY steps on a selection seed (321) and the best is kept; the card reports a different seed (123) so the
reported numbers are not the ones the selection was made on.
"""
import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import evaluate  # noqa: E402

NAME, LATENT, BATCH = "digits-gan", 32, 128
# Fixed step count so train_all.sh reproduces the run; GS_DEADLINE_MIN (wall-clock minutes) only cuts a run short.
STEPS = int(os.environ.get("GS_GAN_STEPS", "20000"))
EVAL_EVERY, LR_D, LR_G, EMA, AUX_W = 1000, 4e-4, 1e-4, 0.999, 1.0


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
        self.aux = nn.Linear(256, 10)  # AC-GAN head: class logits of the same features

    def forward(self, x, y):
        h = self.net(x.reshape(-1, 64))
        return self.out(h).squeeze(1) + (self.proj(y) * h).sum(1), self.aux(h)


def score(G, seed):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(100)
    with torch.no_grad():
        s = G(torch.randn(1000, LATENT, generator=gen), labels).reshape(1000, 64).numpy()
    return evaluate.evaluate(s, labels.numpy())


def better(a, b):
    """Lower FID among checkpoints that reach 97% class accuracy; otherwise higher accuracy."""
    if b is None:
        return True
    ok_a, ok_b = a["class_accuracy"] >= 0.97, b["class_accuracy"] >= 0.97
    if ok_a != ok_b:
        return ok_a
    return a["fid"] < b["fid"] if ok_a else a["class_accuracy"] > b["class_accuracy"]


def main():
    common.setup(1)
    timer = common.Timer()
    deadline = float(os.environ.get("GS_DEADLINE_MIN", "1e9"))
    x, _, y, tr, _ = common.digits()
    xt, yt = torch.tensor(x[tr]), torch.tensor(y[tr])
    G, D = Generator(), Discriminator()
    G_ema = copy.deepcopy(G)
    og = torch.optim.Adam(G.parameters(), lr=LR_G, betas=(0.0, 0.9))
    od = torch.optim.Adam(D.parameters(), lr=LR_D, betas=(0.0, 0.9))
    best, best_state, best_step, steps_done = None, None, -1, 0
    for step in range(STEPS):
        idx = torch.randint(0, len(yt), (BATCH,))
        xr, yr = xt[idx], yt[idx]
        z = torch.randn(BATCH, LATENT)
        yf = torch.randint(0, 10, (BATCH,))
        xf = G(z, yf)
        dr, cr = D(xr, yr)
        df, _ = D(xf.detach(), yf)
        # the aux head learns classes from real digits only (fake ones would teach it the generator's mistakes)
        ld = F.relu(1 - dr).mean() + F.relu(1 + df).mean() + AUX_W * F.cross_entropy(cr, yr)
        od.zero_grad()
        ld.backward()
        od.step()
        dg, cg = D(xf, yf)
        lg = -dg.mean() + AUX_W * F.cross_entropy(cg, yf)
        og.zero_grad()
        lg.backward()
        og.step()
        common.ema_update(G_ema, G, min(EMA, (1 + step) / (10 + step)))
        steps_done = step + 1
        if steps_done % EVAL_EVERY == 0 or steps_done == STEPS:
            G_ema.eval()
            m = score(G_ema, 321)
            if better(m, best):
                best, best_state, best_step = m, copy.deepcopy(G_ema.state_dict()), steps_done
            print(f"step {steps_done} d {ld.item():.3f} g {lg.item():.3f} ema(seed 321) {m} best step {best_step} "
                  f"{timer.minutes()} min", flush=True)
            if timer.minutes() > deadline:
                print(f"deadline: stopping after {steps_done} steps", flush=True)
                break
    minutes = timer.minutes()
    G_ema.load_state_dict(best_state)
    G = G_ema.eval()

    m = score(G, 123)
    gen = torch.Generator().manual_seed(124)
    labels = torch.arange(10).repeat_interleave(100)
    with torch.no_grad():
        # normal folded into (-2, 2) by fmod, then scaled by 0.7: close to, not exactly, the API's truncation
        zt = torch.fmod(torch.randn(1000, LATENT, generator=gen), 2.0) * 0.7
        st = G(zt, labels).reshape(1000, 64).numpy()
    mt = evaluate.evaluate(st, labels.numpy())
    print("metrics", m, "truncated", mt, "best step", best_step, flush=True)
    if os.environ.get("GS_NO_EXPORT"):  # smoke tests: train and score only, leave the shipped model alone
        return

    # write into a temp folder and move in at the end: other jobs read models/<name>/ while this runs
    final = os.path.join(common.MODELS, NAME)
    out = common.staging_dir(NAME)
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
        "name": NAME, "family": "gan", "version": "2",
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
                                 "projection discriminator with spectral norm and an auxiliary 10-class head; "
                                 "hinge loss + AC-GAN cross-entropy (weight 1, D on real only, G on fakes)",
                 "params": sum(p.numel() for p in G.parameters()),
                 "training": f"{steps_done} steps, batch {BATCH}, Adam betas (0, 0.9), lr_D {LR_D}, lr_G {LR_G} "
                             f"(TTUR, one D step per G step), EMA {EMA} of G exported (checkpoint of step "
                             f"{best_step}, chosen every {EVAL_EVERY} steps on sampling seed 321), seed 1; "
                             f"{minutes} min on 2 shared CPU cores",
                 "onnx_bytes": size,
                 "metrics": {
                     "sampler": "plain normal latents (no truncation), 100 samples per class, sampling seed 123",
                     "class_accuracy": m["class_accuracy"], "fid": m["fid"], "fid_floor": m["fid_floor"],
                     "latent_fmod2_x0.7": {"class_accuracy": mt["class_accuracy"], "fid": mt["fid"]},
                     "evaluator": "models/training/evaluate.py (classifier on the train split, FID on its 64-d "
                                  "penultimate features vs the held-out split)"}}}, folder=out)
    common.swap_in(out, final)
    print("done", NAME, minutes, "min", flush=True)


if __name__ == "__main__":
    main()
