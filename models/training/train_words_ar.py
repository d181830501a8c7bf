"""words-ar: character-level transformer over a-z with a KV cache in the Hugging Face Optimum decoder convention.

Vocabulary ["<s>", "</s>", "<pad>", "a".."z"]; a word is <s> c1 .. cn </s>. Data: Debian's wamerican list,
words made only of lower-case a-z, split 95/5 (seeded) into train and held-out.
"""
import math
import os
import random
import re
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from transformer import CachedDecoder, TinyGPT  # noqa: E402

NAME, STEPS, BATCH = "words-ar", 600, 128
D_MODEL, HEADS, LAYERS, FF, MAXLEN = 64, 4, 2, 192, 32
VOCAB = ["<s>", "</s>", "<pad>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
BOS, EOS, PAD = 0, 1, 2


def encode(w):
    return [BOS] + [3 + ord(c) - ord("a") for c in w] + [EOS]


def batch(words):
    seqs = [encode(w) for w in words]
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), PAD, dtype=torch.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    return ids


def loss_on(dec, ids):
    """Mean nats per predicted character (end token included, pads excluded)."""
    mask = (ids != PAD).long()
    pos = torch.cumsum(torch.ones_like(ids), 1) - 1
    logits = dec(ids, mask, pos)[0]
    return F.cross_entropy(logits[:, :-1].reshape(-1, len(VOCAB)), ids[:, 1:].reshape(-1), ignore_index=PAD,
                           reduction="sum"), int((ids[:, 1:] != PAD).sum())


def main():
    common.setup(6)
    timer = common.Timer()
    with open("/usr/share/dict/words") as f:
        words = sorted({w.strip() for w in f if re.fullmatch(r"[a-z]+", w.strip()) and len(w.strip()) <= MAXLEN - 2})
    rng = random.Random(6)
    rng.shuffle(words)
    n_ho = len(words) // 20
    heldout, train = words[:n_ho], words[n_ho:]
    gpt = TinyGPT(len(VOCAB), D_MODEL, HEADS, LAYERS, FF, MAXLEN, dropout=0.0)
    dec = CachedDecoder(gpt)
    opt = torch.optim.AdamW(gpt.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=STEPS, pct_start=0.05)
    g = torch.Generator().manual_seed(6)
    for step in range(STEPS):
        dec.train()
        idx = torch.randint(0, len(train), (BATCH,), generator=g)
        s, n = loss_on(dec, batch([train[i] for i in idx]))
        loss = s / n
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0:
            print(f"step {step} loss {loss.item():.4f} {timer.minutes()} min", flush=True)
    dec.eval()
    minutes = timer.minutes()
    with torch.no_grad():
        tot, cnt = 0.0, 0
        for i in range(0, len(heldout), 512):
            s, n = loss_on(dec, batch(heldout[i:i + 512]))
            tot, cnt = tot + float(s), cnt + n
    ho_loss = tot / cnt
    # a few greedy-free samples for the card
    gen = torch.Generator().manual_seed(123)
    samples = []
    with torch.no_grad():
        for _ in range(12):
            ids = [BOS]
            while len(ids) < MAXLEN:
                t = torch.tensor([ids])
                logits = dec(t, torch.ones_like(t), torch.cumsum(torch.ones_like(t), 1) - 1)[0][0, -1]
                nxt = int(torch.multinomial(F.softmax(logits, -1), 1, generator=gen))
                if nxt == EOS:
                    break
                ids.append(nxt)
            samples.append("".join(VOCAB[i] for i in ids[1:]))
    print("heldout loss", ho_loss, samples, flush=True)

    out = os.path.join(common.MODELS, NAME)
    os.makedirs(out, exist_ok=True)
    dh = D_MODEL // HEADS
    past_names = [f"past_key_values.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(LAYERS) for kv in ("key", "value")]
    in_names = ["input_ids", "attention_mask", "position_ids"] + past_names
    out_names = ["logits"] + present_names
    dyn = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total_sequence"},
           "position_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    dyn.update({n: {0: "batch", 2: "past_sequence"} for n in past_names})
    dyn.update({n: {0: "batch", 2: "total_sequence"} for n in present_names})
    # trace with past 3 and 2 new tokens, so neither length can be mistaken for a constant
    trace = (torch.tensor([[5, 6], [7, 8]]), torch.ones(2, 5, dtype=torch.int64), torch.tensor([[3, 4], [3, 4]]),
             *[torch.randn(2, HEADS, 3, dh) for _ in past_names])
    size = common.export(dec, trace, os.path.join(out, "decoder.onnx"), in_names, out_names, dyn)

    def empty(b):
        return [torch.zeros(b, HEADS, 0, dh) for _ in past_names]

    # case 1: past 0, a prompt of several tokens (batch 2)
    p = torch.tensor([[BOS, 3 + 2, 3 + 0, 3 + 19], [BOS, 3 + 3, 3 + 14, 3 + 6]])  # "cat", "dog"
    m1 = torch.ones_like(p)
    pos1 = torch.cumsum(m1, 1) - 1
    with torch.no_grad():
        pres = dec(p, m1, pos1, *empty(2))[1:]
    # case 2: past 4, one new token
    n2 = torch.tensor([[3 + 18], [3 + 18]])
    m2 = torch.ones(2, 5, dtype=torch.int64)
    pos2 = torch.tensor([[4], [4]])
    # case 3: a left-padded batch, past 0: positions counted from the first real token (pads get 1, as HF does)
    p3 = torch.tensor([[PAD, PAD, BOS, 3 + 1, 3 + 4], [BOS, 3 + 19, 3 + 17, 3 + 4, 3 + 4]])  # "be", "tree"
    m3 = (p3 != PAD).long()
    pos3 = (torch.cumsum(m3, 1) - 1).masked_fill(m3 == 0, 1)
    # case 4: the padded batch continued by one token with its cache
    with torch.no_grad():
        pres3 = dec(p3, m3, pos3, *empty(2))[1:]
    n4 = torch.tensor([[3 + 4], [1]])
    m4 = torch.cat([m3, torch.ones(2, 1, dtype=torch.int64)], 1)
    pos4 = torch.tensor([[3], [5]])
    common.write_golden(dec, [(p, m1, pos1, *empty(2)), (n2, m2, pos2, *pres), (p3, m3, pos3, *empty(2)),
                              (n4, m4, pos4, *pres3), (p[:1, :1], m1[:1, :1], pos1[:1, :1], *empty(1))],
                        in_names, out_names, os.path.join(out, "golden", "decoder.json"))
    # the cache must agree with recomputation: check it here too, not only in C#
    with torch.no_grad():
        full = torch.cat([p, n2], 1)
        ref = dec(full, torch.ones_like(full), torch.cumsum(torch.ones_like(full), 1) - 1, *empty(2))[0][:, -1]
        inc = dec(n2, m2, pos2, *pres)[0][:, -1]
        assert (ref - inc).abs().max() < 1e-4, (ref - inc).abs().max()
        unpadded = torch.tensor([[BOS, 3 + 1, 3 + 4]])
        r2 = dec(unpadded, torch.ones_like(unpadded), torch.tensor([[0, 1, 2]]), *empty(1))[0][0, -1]
        p2 = dec(p3, m3, pos3, *empty(2))[0][0, -1]
        assert (r2 - p2).abs().max() < 1e-4, (r2 - p2).abs().max()

    common.write_manifest(NAME, {
        "name": NAME, "family": "ar", "version": "1",
        "description": "Character-level transformer over English words (a-z), with a KV cache",
        "output": {"kind": "text"},
        "graphs": {"decoder": {"file": "decoder.onnx",
                               "inputs": {n: n for n in in_names}, "outputs": {n: n for n in out_names}}},
        "tokens": {"vocab_size": len(VOCAB), "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD,
                   "max_length": MAXLEN, "vocabulary": VOCAB},
        "batching": common.BATCHING, "instances": 1,
        "card": {"training_data": "Debian wamerican /usr/share/dict/words, words of lower-case a-z only "
                                  f"({len(words)} words)",
                 "split": f"seeded (6) 95/5 split: {len(train)} train / {len(heldout)} held-out words",
                 "architecture": f"decoder-only transformer, {LAYERS} layers, d_model {D_MODEL}, {HEADS} heads "
                                 f"(head dim {dh}), MLP {FF}, learned positions; KV cache inputs/outputs "
                                 "past_key_values.{i}.key/value -> present.{i}.key/value [B, heads, len, head_dim]",
                 "params": sum(p.numel() for p in gpt.parameters()),
                 "training": f"{STEPS} steps, batch {BATCH} words, AdamW one-cycle max lr 3e-3, seed 6; "
                             f"{minutes} min on 2 CPU cores",
                 "onnx_bytes": size,
                 "metrics": {"heldout_loss_nats_per_char": round(ho_loss, 4),
                             "heldout_bits_per_char": round(ho_loss / math.log(2), 4),
                             "note": "per predicted token given <s> and the characters before it, </s> included",
                             "samples_temperature_1": samples},
                 "licence": "weights: MIT (this project); word list: wamerican (SCOWL), permissive licence"}})
    print("done", NAME, minutes, "min", flush=True)


if __name__ == "__main__":
    main()
