"""digits-ar: pixel transformer over the 17 grey levels; 64 pixel tokens after a class start token.

Tokens: 0..16 = pixel levels, 17 + c = start of class c, 27 = unconditional start (bos). 10% of training
sequences start with bos instead of their class, so unconditional generation is trained too.
No KV cache: this model exercises the service's recompute path.

v2: v1 (1,500 steps of batch 32, 2 layers) reached 86.7% class accuracy / FID 27.5, under-trained and with the
class reaching later pixels only through attention to the start token. v2 adds the start token's own embedding
at every position (TinyGPT start_conditioning; the graph's interface is unchanged), trains STEPS steps, keeps an
EMA of the weights and selects the EMA checkpoint by bits/dim on a validation subset carved from the TRAIN split
(VAL_FRACTION, seeded); the held-out split is only read for the final report.

v3: v2 (2 layers, dropout 0.1) reached 96.8% class accuracy (mean of sampling seeds 123-125; aim 97%) and its
validation bits/dim rose after step 3,500 of 6,000. v3 has 3 layers and dropout 0.2 (GS_AR_LAYERS, GS_AR_DROPOUT;
GS_AR_D and GS_AR_FF set the width). Against a wider 2-layer net (d_model 96, MLP 288, dropout 0.2, trained side by
side) it won on the selection criterion, validation bits/dim (1.6704 at step 5,000 vs 1.6827 at step 3,000). Every
evaluation logs the class accuracy and FID of 500 samples at sampling seed 99 ("probe"); they do not pick the
checkpoint.
"""
import copy
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import evaluate  # noqa: E402
from transformer import RecomputeDecoder, TinyGPT  # noqa: E402

NAME, STEPS, BATCH = "digits-ar", int(os.environ.get("GS_AR_STEPS", "6000")), 32
EMA, EVAL_EVERY, VAL_FRACTION, VAL_SEED = 0.999, 500, 0.1, 55
D_MODEL, HEADS = int(os.environ.get("GS_AR_D", "64")), 4
LAYERS, FF = int(os.environ.get("GS_AR_LAYERS", "3")), int(os.environ.get("GS_AR_FF", "192"))
DROPOUT = float(os.environ.get("GS_AR_DROPOUT", "0.2"))
VOCAB, OFFSET, BOS, MAXLEN = 28, 17, 27, 65


@torch.no_grad()
def sample(dec, starts, gen, temperature=1.0):
    """Ancestral sampling. Uses the module's KV cache (the exported graph has none) only to make evaluation
    cheap; the cache gives the same logits as recomputation."""
    gpt = dec.gpt
    ids = starts[:, None]
    nxt, pasts, out = ids, [], []
    for j in range(64):
        mask = torch.ones(len(starts), j + 1, dtype=torch.int64)
        logits, pasts = gpt.core(nxt, mask, torch.full_like(nxt, j), pasts, start_ids=ids)
        logits = logits[:, -1, :17] / temperature  # only pixel levels are valid after the start token
        nxt = torch.multinomial(F.softmax(logits, -1), 1, generator=gen)
        out.append(nxt)
    return (torch.cat(out, 1).float() / 8 - 1).numpy()


def nll_bits_per_dim(dec, levels, starts):
    with torch.no_grad():
        ids = torch.cat([starts[:, None], levels], 1)
        logits = dec(ids[:, :-1])
        nll = F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    return float(nll / math.log(2))


def main():
    common.setup(5)
    timer = common.Timer()
    _, levels, y, tr, ho = common.digits()
    perm_v = np.random.RandomState(VAL_SEED).permutation(len(tr))
    n_val = int(round(VAL_FRACTION * len(tr)))
    va, tr = np.sort(tr[perm_v[:n_val]]), np.sort(tr[perm_v[n_val:]])
    lt, yt = torch.tensor(levels[tr]), torch.tensor(y[tr])
    lv, yv = torch.tensor(levels[va]), torch.tensor(y[va])
    lh, yh = torch.tensor(levels[ho]), torch.tensor(y[ho])
    gpt = TinyGPT(VOCAB, D_MODEL, HEADS, LAYERS, FF, MAXLEN, dropout=DROPOUT, start_conditioning=True)
    dec = RecomputeDecoder(gpt)
    ema_gpt = copy.deepcopy(gpt).eval()
    ema_dec = RecomputeDecoder(ema_gpt)
    best_val, best_state, best_step = float("inf"), None, 0
    opt = torch.optim.AdamW(gpt.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=STEPS, pct_start=0.05)
    for step in range(STEPS):
        dec.train()
        idx = torch.randint(0, len(yt), (BATCH,))
        start = yt[idx] + OFFSET
        start[torch.rand(BATCH) < 0.1] = BOS
        ids = torch.cat([start[:, None], lt[idx]], 1)
        loss = F.cross_entropy(dec(ids[:, :-1]).reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        sched.step()
        common.ema_update(ema_gpt, gpt, min(EMA, (1 + step) / (10 + step)))
        done = step + 1
        if done % EVAL_EVERY == 0 or done == STEPS:
            val = nll_bits_per_dim(ema_dec, lv, yv + OFFSET)
            if val < best_val:
                best_val, best_state, best_step = val, copy.deepcopy(ema_gpt.state_dict()), done
            # for the log only (selection is by validation bits/dim): 50 samples per class, sampling seed 99
            probe = evaluate.evaluate(sample(ema_dec, torch.arange(10).repeat_interleave(50) + OFFSET,
                                             torch.Generator().manual_seed(99)), np.repeat(np.arange(10), 50))
            print(f"step {done} loss {loss.item():.4f} ema val bpd {val:.4f} best step {best_step} "
                  f"probe acc {probe['class_accuracy']} fid {probe['fid']} {timer.minutes()} min", flush=True)
    minutes = timer.minutes()
    gpt.load_state_dict(best_state)
    dec.eval()
    bpd_cond = nll_bits_per_dim(dec, lh, yh + OFFSET)
    bpd_uncond = nll_bits_per_dim(dec, lh, torch.full_like(yh, BOS))
    with torch.no_grad():  # the cached evaluation sampler must see the same logits as the recompute graph
        ids = torch.cat([(yh[:3] + OFFSET)[:, None], lh[:3]], 1)
        pasts, inc = [], []
        for j in range(ids.shape[1]):
            lg, pasts = gpt.core(ids[:, j:j + 1], torch.ones(3, j + 1, dtype=torch.int64), torch.full((3, 1), j), pasts,
                                 start_ids=ids[:, :1])
            inc.append(lg)
        assert (torch.cat(inc, 1) - dec(ids)).abs().max() < 1e-4
    labels = torch.arange(10).repeat_interleave(100)
    metrics = {}
    for temp in (1.0, 0.8):
        s = sample(dec, labels + OFFSET, torch.Generator().manual_seed(123), temp)
        metrics[f"temperature_{temp}"] = evaluate.evaluate(s, labels.numpy())
        print(temp, metrics[f"temperature_{temp}"], flush=True)
    fid_seeds = [evaluate.evaluate(sample(dec, labels + OFFSET, torch.Generator().manual_seed(sd)), labels.numpy())
                 for sd in (124, 125)]
    print("bpd", bpd_cond, bpd_uncond, "seeds 124/125", fid_seeds, flush=True)
    if os.environ.get("GS_NO_EXPORT"):
        return

    out = os.path.join(common.MODELS, NAME)
    os.makedirs(out, exist_ok=True)
    size = common.export(dec, (torch.tensor([[17, 3, 4], [27, 0, 16]]),), os.path.join(out, "decoder.onnx"),
                         ["input_ids"], ["logits"],
                         {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}})
    g2 = torch.Generator().manual_seed(7)
    full = torch.cat([(yh[:2] + OFFSET)[:, None], lh[:2]], 1)
    common.write_golden(dec, [(torch.tensor([[OFFSET + 4]]),),
                              (torch.cat([torch.tensor([[BOS], [OFFSET + 9], [OFFSET]]),
                                          torch.randint(0, 17, (3, 10), generator=g2)], 1),),
                              (full,)],
                        ["input_ids"], ["logits"], os.path.join(out, "golden", "decoder.json"))
    common.save_grid(sample(dec, torch.arange(10).repeat(10) + OFFSET, g2), os.path.join(common.IMG_DIR, f"{NAME}.png"))
    m = metrics["temperature_1.0"]
    common.write_manifest(NAME, {
        "name": NAME, "family": "ar", "version": "3",
        "description": "Class-conditional pixel transformer on 8x8 handwritten digits (17 grey levels as tokens)",
        "output": common.IMAGE_OUTPUT,
        "conditioning": {"num_classes": 10, "labels": common.LABELS},
        "graphs": {"decoder": {"file": "decoder.onnx", "inputs": {"input_ids": "input_ids"},
                               "outputs": {"logits": "logits"}}},
        "tokens": {"vocab_size": VOCAB, "bos_token_id": BOS, "class_start_token_offset": OFFSET,
                   "max_length": MAXLEN, "image_levels": 17},
        "batching": common.BATCHING, "instances": 1,
        "card": {**common.DATA_CARD,
                 "architecture": f"decoder-only transformer, {LAYERS} layers, d_model {D_MODEL}, {HEADS} heads, "
                                 f"MLP {FF}, learned positions, the start token's embedding added at every position; "
                                 "tokens 0..16 levels, 17+c class start, 27 bos",
                 "params": sum(p.numel() for p in gpt.parameters()),
                 "training": f"{STEPS} steps, batch {BATCH}, AdamW one-cycle max lr 2e-3, dropout {DROPOUT}, "
                             f"10% start-token dropout to bos, EMA {EMA}; kept the EMA at step {best_step} by bits/dim "
                             f"on a validation subset of {len(va)} digits carved from the train split (seed {VAL_SEED}; "
                             f"trained on the other {len(tr)}), seed 5; {minutes} min on 2 shared CPU cores",
                 "onnx_bytes": size,
                 "metrics": {
                     "heldout_bits_per_dim": round(bpd_cond, 4),
                     "heldout_bits_per_dim_note": "class start token given; 64 pixel tokens, log2 of 17-way softmax",
                     "heldout_bits_per_dim_unconditional": round(bpd_uncond, 4),
                     "sampler": "ancestral sampling over the 17 level tokens, temperature 1, no top-k/top-p, "
                                "100 per class",
                     "class_accuracy": m["class_accuracy"], "fid": m["fid"], "fid_floor": m["fid_floor"],
                     "temperature_0.8": metrics["temperature_0.8"],
                     "validation_bits_per_dim": round(best_val, 4),
                     "fid_sampling_seeds": {"123": m["fid"], "124": fid_seeds[0]["fid"], "125": fid_seeds[1]["fid"]},
                     "class_accuracy_sampling_seeds": {"123": m["class_accuracy"],
                                                       "124": fid_seeds[0]["class_accuracy"],
                                                       "125": fid_seeds[1]["class_accuracy"]},
                     "evaluator": "models/training/evaluate.py"}}})
    print("done", NAME, minutes, "min", flush=True)


if __name__ == "__main__":
    main()
