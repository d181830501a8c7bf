"""digits-txt2img evaluation: an independent attribute classifier, prompt adherence, FID and the sample grid.

    python3 evaluate_txt2img.py --train-classifier   # models/training/eval/txt2img_classifier.pt (train-split renders)
    python3 evaluate_txt2img.py --classifier-accuracy  # its held-out accuracy (jittered and centred renders)
    python3 evaluate_txt2img.py [--n 300] [--sampler pndm] [--steps 50] [--guidance 7.5] [--sampling-ref DIR] [--grid]

The classifier (conv net, heads digit / foreground colour / background colour / size) is trained on renders of
the TRAIN split only (txt2img_data.render, random attributes), never on generated images; its held-out accuracy is
measured on renders of the held-out split. Prompt adherence: sample i asks for digit i % 10 and random (size,
fg, bg); it adheres when the classifier reads digit, fg and bg as asked (size is reported separately).
FID uses the classifier's 64-d penultimate features (as evaluate.py does for the 8x8 models), generated samples
against the same number of centred held-out renders (the model's data distribution); the floor is as many
centred train-split renders against the same held-out renders.
Sampling runs the PyTorch StableDiffusionPipeline reference (tests/GenService.Api.Tests/Reference/txt2img/
make_reference.py) at the serving defaults: PNDM, 50 steps, guidance_scale 7.5, 32x32. --sampling-ref names the
folder of the numpy schedulers (make_reference.py + philox_ref.py) when it is not this checkout's.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import evaluate  # noqa: E402  (fid_from_features)
import txt2img_data as D  # noqa: E402

CLASSIFIER_PATH = os.path.join(common.EVAL_DIR, "txt2img_classifier.pt")
REFERENCE = os.path.join(common.REPO, "tests", "GenService.Api.Tests", "Reference", "txt2img")
N_COLOURS = len(D.COLOUR_NAMES)


class AttributeClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 24, 3, padding=1)
        self.c2 = nn.Conv2d(24, 48, 3, padding=1)
        self.c3 = nn.Conv2d(48, 64, 3, padding=1)
        self.b1, self.b2, self.b3 = nn.BatchNorm2d(24), nn.BatchNorm2d(48), nn.BatchNorm2d(64)
        self.fc = nn.Linear(64 * 4 * 4, 64)
        self.heads = nn.Linear(64, 10 + 2 * N_COLOURS + 2)
        self.drop = nn.Dropout(0.2)

    def features(self, x):
        h = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
        h = F.max_pool2d(F.relu(self.b2(self.c2(h))), 2)
        h = F.max_pool2d(F.relu(self.b3(self.c3(h))), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x):
        o = self.heads(self.drop(self.features(x)))
        c = N_COLOURS
        return o[:, :10], o[:, 10:10 + c], o[:, 10 + c:10 + 2 * c], o[:, 10 + 2 * c:]


def renders(split, n, seed, jitter=D.DATA_JITTER):
    """n renders of the given split ("train"/"heldout"): (images, digit, size, fg, bg); centred by default (the
    text-to-image data distribution), jitter=D.JITTER for the classifier's own training distribution."""
    _, levels, y, tr, ho = common.digits()
    idx = tr if split == "train" else ho
    rng = np.random.RandomState(seed)
    pick = idx[rng.randint(0, len(idx), n)]
    size, fg, bg, dx, dy = D.sample_attributes(n, rng, jitter=jitter)
    return D.render(levels[pick], size, fg, bg, dx, dy), y[pick], size, fg, bg


def train_classifier(steps=3000, batch=64):
    common.setup(5)
    timer = common.Timer()
    _, levels, y, tr, _ = common.digits()
    rng = np.random.RandomState(5)
    net = AttributeClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    for step in range(steps):
        pick = tr[rng.randint(0, len(tr), batch)]
        size, fg, bg, dx, dy = D.sample_attributes(batch, rng)
        x = D.render(levels[pick], size, fg, bg, dx, dy)
        x = x + 0.05 * torch.randn_like(x)  # a little robustness to the noise a sampler leaves
        o = net(x)
        targets = [torch.as_tensor(v) for v in (y[pick], fg, bg, size)]
        loss = sum(F.cross_entropy(oi, ti) for oi, ti in zip(o, targets))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0:
            print(f"classifier step {step} loss {loss.item():.4f} {timer.minutes()} min", flush=True)
    net.eval()
    os.makedirs(common.EVAL_DIR, exist_ok=True)
    torch.save(net.state_dict(), CLASSIFIER_PATH)
    global _NET
    _NET = None
    out = classifier_accuracy()
    out["minutes"] = timer.minutes()
    print(json.dumps(out))
    return out


def classifier_accuracy():
    """Held-out accuracy of the classifier on 2,000 renders of the held-out split, jittered and centred."""
    jit = accuracies(*renders("heldout", 2000, 6, jitter=D.JITTER))
    cen = accuracies(*renders("heldout", 2000, 6, jitter=0))
    return {"classifier_heldout_jitter2": jit, "classifier_heldout_centred": cen}


_NET = None


def classifier():
    global _NET
    if _NET is None:
        _NET = AttributeClassifier()
        _NET.load_state_dict(torch.load(CLASSIFIER_PATH))
        _NET.eval()
    return _NET


@torch.no_grad()
def predict(x):
    o = [torch.cat(parts) for parts in zip(*(classifier()(torch.as_tensor(x[i:i + 500], dtype=torch.float32))
                                              for i in range(0, len(x), 500)))]
    return [v.argmax(1).numpy() for v in o]


@torch.no_grad()
def features(x):
    return np.concatenate([classifier().features(torch.as_tensor(x[i:i + 500], dtype=torch.float32)).numpy()
                           for i in range(0, len(x), 500)]).astype(np.float64)


def accuracies(x, digit, size, fg, bg):
    pd, pf, pb, ps = predict(x)
    ok_d, ok_f, ok_b, ok_s = pd == digit, pf == fg, pb == bg, ps == size
    return {"n": int(len(x)), "adherence_digit_fg_bg": round(float((ok_d & ok_f & ok_b).mean()), 4),
            "digit": round(float(ok_d.mean()), 4), "fg": round(float(ok_f.mean()), 4),
            "bg": round(float(ok_b.mean()), 4), "size": round(float(ok_s.mean()), 4),
            "all_four": round(float((ok_d & ok_f & ok_b & ok_s).mean()), 4)}


def pipeline(sampling_ref):
    sys.path.insert(0, REFERENCE)
    import make_reference
    return make_reference.Pipeline(sampling_ref=sampling_ref)


def generate(pipe, prompts, sampler, steps, guidance, seed, h=32, w=32, chunk=100):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(0, len(prompts), chunk):
        p = prompts[i:i + chunk]
        lat = rng.standard_normal((len(p), 4, h // 4, w // 4)).astype(np.float32)
        out.append(pipe(p, guidance_scale=guidance, sampler=sampler, steps=steps, latents=lat, seed=seed + i))
    return np.concatenate(out).astype(np.float32)


def evaluate_samples(a):
    timer = common.Timer()
    rng = np.random.RandomState(a.seed)
    n = a.n
    digit = np.arange(n) % 10
    size, fg, bg, _, _ = D.sample_attributes(n, rng)
    prompts = [D.caption(d, s, f, b) for d, s, f, b in zip(digit, size, fg, bg)]
    pipe = pipeline(a.sampling_ref)
    x = generate(pipe, prompts, a.sampler, a.steps, a.guidance, a.seed)
    res = accuracies(x, digit, size, fg, bg)
    ho = renders("heldout", n, 7)[0]
    tr = renders("train", n, 8)[0]
    fho = features(ho)
    res["fid"] = round(evaluate.fid_from_features(features(x), fho), 3)
    res["fid_floor"] = round(evaluate.fid_from_features(features(tr), fho), 3)
    res.update({"sampler": a.sampler, "steps": a.steps, "guidance_scale": a.guidance, "image_size": "32x32",
                "sampling_seed": a.seed, "minutes": timer.minutes()})
    print(json.dumps(res), flush=True)
    if a.save:
        np.save(a.save, x)
    return res


def grid(a, path=os.path.join(common.IMG_DIR, "digits-txt2img-grid.png")):
    """Rows: prompts (size, fg, bg); columns: digits 0..9; one sample each at the serving defaults."""
    from PIL import Image, ImageDraw
    rows = [(0, 2, 4), (1, 5, 0), (0, 1, 3), (1, 4, 1), (0, 0, 5), (1, 3, 2)]  # (size, fg, bg) indices
    prompts = [D.caption(d, s, f, b) for s, f, b in rows for d in range(10)]
    pipe = pipeline(a.sampling_ref)
    x = generate(pipe, prompts, a.sampler, a.steps, a.guidance, a.seed + 1000)
    scale, pad, label_w = 3, 4, 300
    cell = 32 * scale + pad
    img = Image.new("RGB", (label_w + 10 * cell + pad, len(rows) * cell + pad), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, p in enumerate(prompts):
        r, c = divmod(i, 10)
        tile = ((np.clip(x[i], -1, 1).transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)
        tile = Image.fromarray(tile).resize((32 * scale, 32 * scale), Image.NEAREST)
        img.paste(tile, (label_w + pad + c * cell, pad + r * cell))
        if c == 0:
            s, f, b = rows[r]
            draw.text((6, pad + r * cell + 40),
                      f"a {D.SIZE_NAMES[s]} {D.COLOUR_NAMES[f]} <digit>\non a {D.COLOUR_NAMES[b]} background",
                      fill=(0, 0, 0))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path)
    pd, pf, pb, _ = predict(x)
    d = np.tile(np.arange(10), len(rows))
    print(f"grid -> {os.path.relpath(path, common.REPO)}; classifier reads {(pd == d).mean():.2f} digits right")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train-classifier", action="store_true")
    p.add_argument("--classifier-accuracy", action="store_true")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--sampler", default="pndm")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--sampling-ref", help="folder holding the sampling make_reference.py (default: this checkout's)")
    p.add_argument("--grid", action="store_true")
    p.add_argument("--save", help="write the samples to this .npy")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("GS_THREADS", "1")))
    if a.train_classifier:
        train_classifier()
        return
    if a.classifier_accuracy:
        print(json.dumps(classifier_accuracy()))
        return
    if a.grid:
        grid(a)
    else:
        evaluate_samples(a)


if __name__ == "__main__":
    main()
