"""Reference numbers for the AR endpoint tests, computed in PyTorch from the published model code.

    /usr/bin/python3 tests/GenService.Api.Tests/Reference/ar/make_ar_reference.py [models_dir] [out.json]

For words-ar (KV-cache decoder) and digits-ar (recompute decoder) it rebuilds the PyTorch TinyGPT of
models/training/transformer.py and loads its weights: from a state_dict checkpoint
(models/training/checkpoints/<name>.pt) when there is one, else from the ONNX file's initializers (the export keeps
parameter names for embeddings, LayerNorms and biases; each Linear weight is the MatMul constant feeding the Add of
its named bias, transposed). The rebuilt model is checked against the trainer's golden PyTorch outputs
(models/<name>/golden/decoder.json) before any number is written, so the weights are the trained ones.

Then, with plain PyTorch (no service code):
  - greedy decodes: argmax of the last logits, token by token, from the start token (+ prompt), until eos or
    max_length; the image model only picks among its 17 level tokens (the service masks start/class tokens the same way);
  - greedy decodes with a Hugging Face repetition penalty (logit > 0 ? logit / p : logit * p over tokens so far);
  - seeded samples: temperature, top-k, top-p in Hugging Face's order, then token k of sample i is the first id whose
    cumulative probability exceeds the k-th uniform of NoiseStream(seed, i, stream 2 = TokenSampling), drawn with the Sampling
    tests' independent numpy Philox (tests/GenService.Sampling.Tests/Reference/philox_ref.py);
  - log-likelihoods: log_softmax over the whole vocabulary of token j given the start token and tokens before it.
The output records each decoder file's sha256 so the C# test can tell a stale fixture from a wrong answer.
"""
import hashlib
import json
import os
import re
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "models", "training"))
from transformer import TinyGPT  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests", "GenService.Sampling.Tests", "Reference"))
import philox_ref  # noqa: E402  (independent numpy NoiseStream)

TOKEN_STREAM = 2  # NoiseStreamIds.TokenSampling: one uniform per generated token of sample i

MODELS = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(REPO, "models")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "ar_reference.json")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def onnx_state_dict(path):
    g = onnx.load(path).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consumers = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {o: node for node in g.node for o in node.output}
    sd = {k: v for k, v in init.items() if k.startswith("gpt.") and not k.endswith("proj.weight") and "qkv.weight" not in k}
    for node in g.node:
        if node.op_type == "MatMul":
            w_name = node.input[1]
            transposed = False
            if w_name not in init and w_name in producers and producers[w_name].op_type == "Transpose":
                w_name, transposed = producers[w_name].input[0], True
            if w_name not in init:
                continue  # activation x activation (attention)
            bias = None
            for c in consumers.get(node.output[0], []):
                if c.op_type == "Add":
                    other = [i for i in c.input if i != node.output[0]]
                    if other and other[0] in init and other[0].endswith(".bias"):
                        bias = other[0]
            assert bias is not None, f"no named bias after MatMul {node.name}"
            w = init[w_name]
            sd[bias[:-len(".bias")] + ".weight"] = w if transposed else w.T
        elif node.op_type == "Gemm":
            a = {x.name: x for x in node.attribute}
            w = init[node.input[1]]
            trans_b = a["transB"].i if "transB" in a else 0
            sd[node.input[2][:-len(".bias")] + ".weight"] = w if trans_b else w.T
    return {k: torch.tensor(np.ascontiguousarray(v)) for k, v in sd.items()}


def load(name):
    folder = os.path.join(MODELS, name)
    manifest = json.load(open(os.path.join(folder, "model.json")))
    onnx_path = os.path.join(folder, manifest["graphs"]["decoder"]["file"])
    ckpt = os.path.join(REPO, "models", "training", "checkpoints", f"{name}.pt")
    sd = torch.load(ckpt, map_location="cpu") if os.path.exists(ckpt) else onnx_state_dict(onnx_path)
    sd = {k[len("gpt."):] if k.startswith("gpt.") else k: v for k, v in sd.items()}
    vocab, d = sd["tok.weight"].shape
    max_len = sd["pos.weight"].shape[0]
    layers = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
    ff = sd["layers.0.ff.0.weight"].shape[0]
    g = onnx.load(onnx_path).graph
    past = [i for i in g.input if i.name.startswith("past_key_values")]
    if past:
        heads = past[0].type.tensor_type.shape.dim[1].dim_value
    else:
        heads = int(re.search(r"(\d+) heads", manifest["card"]["architecture"]).group(1))
    # digits-ar v2 adds the start token's embedding at every position (TinyGPT start_conditioning)
    gpt = TinyGPT(vocab, d, heads, layers, ff, max_len, dropout=0.0, start_conditioning="start.weight" in sd)
    gpt.load_state_dict(sd)
    gpt.eval()
    check_golden(gpt, folder, bool(past))
    return gpt, manifest, sha256(onnx_path)


def logits_of(gpt, ids):
    """Full-sequence logits [B,S,V] (past length 0, positions 0..S-1, nothing masked but the future)."""
    ids = torch.as_tensor(ids, dtype=torch.int64)
    ones = torch.ones_like(ids)
    with torch.no_grad():
        return gpt.core(ids, ones, torch.cumsum(ones, 1) - 1, None)[0]


def check_golden(gpt, folder, cached):
    cases = json.load(open(os.path.join(folder, "golden", "decoder.json")))["cases"]
    worst = 0.0
    for case in cases:
        ins = {k: torch.tensor(v["data"], dtype=torch.int64 if v["dtype"] == "int64" else torch.float32).reshape(v["shape"])
               for k, v in case["inputs"].items()}
        with torch.no_grad():
            if cached:
                names = sorted([k for k in ins if k.startswith("past_key_values")],
                               key=lambda k: (int(k.split(".")[1]), k.endswith("value")))
                pasts = [ins[k] for k in names]
                out = gpt.core(ins["input_ids"], ins["attention_mask"], ins["position_ids"], pasts)[0]
            else:
                out = logits_of(gpt, ins["input_ids"])
        ref = torch.tensor(case["outputs"]["logits"]["data"]).reshape(case["outputs"]["logits"]["shape"])
        worst = max(worst, float((out - ref).abs().max()))
    assert worst < 1e-4, f"rebuilt model differs from the golden outputs by {worst}"
    print(os.path.basename(folder), "golden check max |diff|", worst)


def greedy(gpt, start, prompt, max_length, eos=None, allowed=None, penalty=1.0):
    seq = list(start) + list(prompt)
    out = []
    while len(seq) < max_length:
        last = logits_of(gpt, [seq])[0, -1].double().clone()
        if penalty != 1.0:
            for t in set(seq):
                last[t] = last[t] / penalty if last[t] > 0 else last[t] * penalty
        if allowed is not None:
            last[allowed:] = -float("inf")
        t = int(torch.argmax(last))
        seq.append(t)
        out.append(t)
        if eos is not None and t == eos:
            return out, "eos_token"
    return out, "length"


def filtered_probs(logits, seq, temperature, top_k, top_p, penalty, allowed):
    """Hugging Face order, in float64: repetition penalty, temperature, top-k (ties with the k-th kept),
    top-p (tokens by descending probability kept while the mass before them is below top_p), softmax."""
    x = logits.double().clone()
    if penalty != 1.0:
        for t in set(seq):
            x[t] = x[t] / penalty if x[t] > 0 else x[t] * penalty
    if allowed is not None:
        x[allowed:] = -float("inf")
    x = x / temperature
    if top_k:
        kth = torch.sort(x, descending=True).values[top_k - 1]
        x[x < kth] = -float("inf")
    p = torch.softmax(x, -1)
    if top_p < 1.0:
        order = sorted(range(len(p)), key=lambda i: (-float(p[i]), i))
        before, keep = 0.0, set()
        for j, t in enumerate(order):
            if j > 0 and before >= top_p:
                break
            keep.add(t)
            before += float(p[t])
        mask = torch.tensor([i in keep for i in range(len(p))])
        p = torch.where(mask, p, torch.zeros_like(p))
        p = p / p.sum()
    return p


def sample(gpt, start, prompt, max_length, seed, index, eos=None, allowed=None, temperature=1.0, top_k=0, top_p=1.0,
           penalty=1.0):
    """Token k of sample `index` is the first id whose cumulative probability exceeds u_k, the k-th uniform of
    NoiseStream(seed, index, Tokens) (philox_ref)."""
    seq = list(start) + list(prompt)
    u = philox_ref.uniforms(seed, index, TOKEN_STREAM, max_length)
    out = []
    while len(seq) < max_length:
        p = filtered_probs(logits_of(gpt, [seq])[0, -1], seq, temperature, top_k, top_p, penalty, allowed)
        c = torch.cumsum(p, 0)
        t = int((c > float(u[len(out)])).nonzero()[0])
        seq.append(t)
        out.append(t)
        if eos is not None and t == eos:
            return out, "eos_token"
    return out, "length"


def loglik(gpt, start, seq):
    ids = [start] + list(seq[:-1])
    lp = F.log_softmax(logits_of(gpt, [ids])[0].double(), -1)
    per = [float(lp[j, t]) for j, t in enumerate(seq)]
    return {"tokens": list(seq), "token_log_probs": per, "log_prob": float(sum(per))}


def words(gpt, manifest, digest):
    t = manifest["tokens"]
    vocab = t["vocabulary"]
    enc = lambda s: [vocab.index(c) for c in s]  # noqa: E731  (single characters only)
    bos, eos, max_length = t["bos_token_id"], t["eos_token_id"], t["max_length"]
    cases = []
    for prompt in ["", "ca", "st", "qu", "x"]:
        toks, reason = greedy(gpt, [bos], enc(prompt), max_length, eos=eos)
        cases.append({"prompt": prompt, "prompt_tokens": enc(prompt), "tokens": toks, "finish_reason": reason,
                      "text": "".join(vocab[i] for i in toks if i > 2)})
    toks, reason = greedy(gpt, [bos], enc("ba"), max_length, eos=eos, penalty=1.5)
    penalty = {"prompt": "ba", "repetition_penalty": 1.5, "tokens": toks, "finish_reason": reason}
    ll = [loglik(gpt, bos, enc(w)) for w in ["cat", "dog", "zebra"]] + [loglik(gpt, bos, enc("tree") + [eos])]
    sampled = {"prompt": "b", "seed": 7, "temperature": 0.8, "top_k": 8, "top_p": 0.9, "repetition_penalty": 1.1,
               "samples": []}
    for i in range(4):
        toks, reason = sample(gpt, [bos], enc("b"), max_length, 7, i, eos=eos, temperature=0.8, top_k=8, top_p=0.9,
                              penalty=1.1)
        sampled["samples"].append({"tokens": toks, "finish_reason": reason})
    return {"sha256": digest, "greedy": cases, "greedy_repetition_penalty": penalty, "sampled": sampled,
            "log_likelihood": {"sequences": ["cat", "dog", "zebra", enc("tree") + [eos]], "results": ll}}


def digits(gpt, manifest, digest):
    t = manifest["tokens"]
    off, bos, max_length, levels = t["class_start_token_offset"], t["bos_token_id"], t["max_length"], t["image_levels"]
    cases = []
    for label in [0, 3, 7]:
        toks, reason = greedy(gpt, [off + label], [], max_length, allowed=levels)
        cases.append({"class_label": label, "prompt_tokens": [], "tokens": toks, "finish_reason": reason})
    toks, reason = greedy(gpt, [bos], [], max_length, allowed=levels)
    cases.append({"class_label": None, "prompt_tokens": [], "tokens": toks, "finish_reason": reason})
    prompt = [0, 0, 5, 13, 9, 1, 0, 0]  # the top row of a 0
    toks, reason = greedy(gpt, [off + 0], prompt, max_length, allowed=levels)
    cases.append({"class_label": 0, "prompt_tokens": prompt, "tokens": toks, "finish_reason": reason})
    # Greedy pixels from a bare start token are mostly background (level 0); the top half of real digits and a
    # repetition penalty give continuations with ink in them, so the comparison is not just zeros.
    from sklearn.datasets import load_digits
    d = load_digits()
    for i in (10, 25, 42):
        prompt = d.data[i].astype(int).tolist()[:32]
        label = int(d.target[i])
        toks, reason = greedy(gpt, [off + label], prompt, max_length, allowed=levels)
        cases.append({"class_label": label, "prompt_tokens": prompt, "tokens": toks, "finish_reason": reason})
    toks, reason = greedy(gpt, [off + 5], [], max_length, allowed=levels, penalty=1.3)
    penalty = {"class_label": 5, "repetition_penalty": 1.3, "tokens": toks, "finish_reason": reason}
    seqs = [d.data[i].astype(int).tolist() for i in range(3)]  # digits 0, 1, 2
    ll = {"class_label": 0, "sequences": seqs, "results": [loglik(gpt, off + 0, s) for s in seqs]}
    sampled = {"class_label": 2, "seed": 11, "temperature": 1.0, "samples": []}
    for i in range(2):
        toks, reason = sample(gpt, [off + 2], [], max_length, 11, i, allowed=levels)
        sampled["samples"].append({"tokens": toks, "finish_reason": reason})
    return {"sha256": digest, "greedy": cases, "greedy_repetition_penalty": penalty, "sampled": sampled,
            "log_likelihood": ll}


def main():
    out = {"generated_by": "tests/GenService.Api.Tests/Reference/ar/make_ar_reference.py",
           "torch": torch.__version__}
    gpt, manifest, digest = load("words-ar")
    out["words-ar"] = words(gpt, manifest, digest)
    gpt, manifest, digest = load("digits-ar")
    out["digits-ar"] = digits(gpt, manifest, digest)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
