#!/usr/bin/python3
"""Writes tiny Stable-Diffusion-layout ONNX export folders (text-to-image) and their torch reference numbers.

Run:  /usr/bin/python3 tests/GenService.Generation.Tests/TestModels/txt2img/make_tiny_txt2img.py
      (torch 1.13 + onnx 1.12 + numpy; deterministic: rerunning rewrites byte-identical files)

Every folder holds the layout Hugging Face Optimum's `optimum-cli export onnx` writes for a Stable Diffusion 1.x
pipeline (model_index.json, text_encoder/, unet/, vae_decoder/, vae_encoder/, tokenizer/, scheduler/), ALL with the
same weights (but broken-cross-attention-width's unet), so one request gives the same image from each of them (up to float16 rounding in `fp16`). The folders
differ only in how the graphs were exported, the way real exporters differ (names, dtypes and shapes follow
optimum/exporters/onnx/model_configs.py - CLIPTextOnnxConfig, UNetOnnxConfig, VaeEncoderOnnxConfig,
VaeDecoderOnnxConfig - and diffusers' scripts/convert_stable_diffusion_checkpoint_to_onnx.py); see VARIANTS below
and README.md (written by this script) for the per-graph input/output table. `broken-*` folders each carry one
fault a loader must report, with the file and field its error must name in expected_error.txt.

The tiny networks (random weights, scaled so outputs are O(1) and depend on prompt and timestep):
  text encoder  CLIP text transformer: token + position embedding (width 16), one pre-LN causal self-attention layer
                (2 heads, quick_gelu MLP 64), final layer norm -> last_hidden_state [b, L, 16]; pooler_output [b, 16]
                = last_hidden_state at argmax(input_ids) (the first <|endoftext|>, the highest id), as CLIPTextModel.
  UNet          latents [b, 4, h, w] (h, w even) -> eps [b, 4, h, w]: sinusoidal timestep embedding (diffusers
                Timesteps, flip_sin_to_cos, computed in float32 as diffusers does), conv_in 4->8, one res block,
                a stride-2 down conv 8->16, one cross-attention block (2 heads) over encoder_hidden_states, a nearest
                x2 up conv 16->8, a skip concat and conv_out 8->4; eps = 0.9 sample + 0.4 conv_out(...).
                The timestep may be a scalar, [1] or [b]; a scalar or [1] applies to every row.
  VAE decoder   4 -> 3 channels, nearest upsample x2 (VAE factor 2: block_out_channels has length 2).
  VAE encoder   3 -> 8 channels (mean, logvar), stride-2 downsample.
  tokenizer     a CLIP byte-level BPE vocabulary in Hugging Face CLIPTokenizer's file format (the 256
                bytes_to_unicode symbols, the same with "</w>", the merge results, <|startoftext|>, <|endoftext|>)
                whose merges build the whole words of WORDS; model_max_length 8.

reference.json: the pipeline computed in torch (float32 networks, float64 DDIM from
tests/GenService.Sampling.Tests/Reference/make_reference.py) for a few requests with explicit latents, with the
token ids (from a real CLIP BPE: models/training/clip_bpe.py, or $CLIP_BPE_DIR/clip_bpe.py), the text embeddings,
every DDIM step and the raw decoder output; and per variant the expected image of one guided request.
"""
import copy
import io
import json
import math
import os
import shutil
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

sys.dont_write_bytecode = True  # imports from other folders leave no __pycache__ behind
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "GenService.Sampling.Tests", "Reference"))
import make_reference  # noqa: E402  (the numpy DDIM the sampling tests are checked against)

SEED = 20261207
OPSET = 14  # Optimum's DEFAULT_ONNX_OPSET for CLIP text, UNet and VAE
WIDTH, HEADS, INTERMEDIATE, MAX_LEN = 16, 2, 64, 8
UNET_CH, UNET_CH2, TEMB = 8, 16, 16
VAE_CH = 8
WORDS = ["a", "red", "blue", "cat", "dog", "on", "the"]

# Tolerances the reference numbers are meant to be checked with (max abs difference on the raw decoder output,
# whose values here are within about +-5). Measured by running every folder end to end through ONNX Runtime 1.31.1
# (CPU, C# API; a throwaway harness, not in the repository) with the guidance and the DDIM update in float64 and
# each graph's inputs in its declared dtype: float32 folders differ from this torch reference by at most 7.6e-6
# (images) and 4e-6 (x after each step); `fp16` by at most FP16_MEASURED on the images of all three requests
# (1.4e-2 on x after a step), with float16 text encoder outputs fed to the float16 unet. The tolerances leave
# ~13x and ~4x headroom for other kernels (CUDA, other CPUs) and other float orders.
FP32_TOLERANCE = 1e-4
FP16_MEASURED = 7.96e-3
FP16_TOLERANCE = 3e-2

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ tokenizer files
sys.path.insert(0, os.path.join(REPO, "models", "training"))
from clip_bpe import bytes_to_unicode  # noqa: E402  (GPT-2 / CLIP byte symbols, in CLIP's vocabulary order)


def build_vocabulary():
    """CLIP's vocabulary construction (openai/CLIP simple_tokenizer.py) over merges that build each word of WORDS:
    byte symbols, byte symbols + "</w>", one entry per merge (its result), then the two special tokens."""
    merges = []
    for word in WORDS:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:  # merge left to right: "b l", "bl u", "blu e</w>"
            pair = (symbols[0], symbols[1])
            if pair not in merges:
                merges.append(pair)
            symbols = [symbols[0] + symbols[1]] + symbols[2:]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab)) == len(vocab)
    return {tok: i for i, tok in enumerate(vocab)}, merges


VOCAB, MERGES = build_vocabulary()
BOS, EOS = VOCAB["<|startoftext|>"], VOCAB["<|endoftext|>"]


def added_token(content, with_type=False):
    tok = {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    return {"__type": "AddedToken", **tok} if with_type else tok


def write_tokenizer_files(folder):
    """CLIPTokenizer.save_pretrained's files, as SD 1.x pipelines carry them (transformers 4.2x format)."""
    write_json(os.path.join(folder, "vocab.json"), VOCAB, sort_keys=True)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in MERGES:
            f.write(f"{a} {b}\n")
    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "add_prefix_space": False,
        "bos_token": added_token("<|startoftext|>", True),
        "do_lower_case": True,
        "eos_token": added_token("<|endoftext|>", True),
        "errors": "replace",
        "model_max_length": MAX_LEN,
        "name_or_path": "genservice/tiny-clip",
        "pad_token": "<|endoftext|>",
        "special_tokens_map_file": "./special_tokens_map.json",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": added_token("<|endoftext|>", True),
    })
    write_special_tokens_map(folder)


def write_special_tokens_map(folder):
    write_json(os.path.join(folder, "special_tokens_map.json"), {
        "bos_token": added_token("<|startoftext|>"),
        "eos_token": added_token("<|endoftext|>"),
        "pad_token": "<|endoftext|>",
        "unk_token": added_token("<|endoftext|>"),
    })


def write_tokenizer_json(folder):
    """The fast-tokenizer form of the same vocabulary: tokenizer.json as transformers' CLIPConverter builds it
    (tokenizers' serialisation; merges as "a b" strings, as on the CLIP/SD repositories), plus the
    tokenizer_config.json of newer transformers (added_tokens_decoder, plain-string special tokens).
    No vocab.json/merges.txt: a reader must take vocabulary and merges from tokenizer.json."""
    def special(i, content):
        return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": True, "special": True}

    pattern = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    write_json(os.path.join(folder, "tokenizer.json"), {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(BOS, "<|startoftext|>"), special(EOS, "<|endoftext|>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Removed", "invert": True},
            byte_level]},
        "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", EOS], "cls": ["<|startoftext|>", BOS],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<|endoftext|>", "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": VOCAB, "merges": [f"{a} {b}" for a, b in MERGES]},
    })
    write_json(os.path.join(folder, "tokenizer_config.json"), {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(BOS): {**added_token("<|startoftext|>"), "special": True},
                                 str(EOS): {**added_token("<|endoftext|>"), "special": True}},
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": MAX_LEN,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    })
    write_special_tokens_map(folder)


def load_clip_bpe():
    """The project's Python CLIP BPE (openai's simple_tokenizer over HF files), if it can be found."""
    for d in [os.environ.get("CLIP_BPE_DIR"), os.path.join(REPO, "models", "training")]:
        if d and os.path.exists(os.path.join(d, "clip_bpe.py")):
            sys.path.insert(0, d)
            import clip_bpe
            return clip_bpe, "models/training/clip_bpe.py (openai CLIP's BPE) over base/tokenizer's vocab.json + merges.txt"
    return None, None


def lookup_ids(prompt):
    """Fallback tokenizer for prompts made of WORDS only: bos, whole-word ids, eos, pad (CLIPTokenizer's padded call)."""
    ids = [VOCAB[w + "</w>"] for w in prompt.lower().split()]
    ids = [BOS] + ids[: MAX_LEN - 2] + [EOS]
    return ids + [EOS] * (MAX_LEN - len(ids))


def check_merges_build_words():
    """Each word of WORDS must come out of BPE (lowest-rank pair first) as one token: checks MERGES' order."""
    ranks = {m: i for i, m in enumerate(MERGES)}
    for word in WORDS:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = [(ranks.get((symbols[i], symbols[i + 1]), math.inf), i) for i in range(len(symbols) - 1)]
            rank, i = min(pairs)
            if rank == math.inf:
                break
            symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
        assert symbols == [word + "</w>"], (word, symbols)


# ------------------------------------------------------------------------------------------------ tiny networks
def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def upsample2(x):
    """Nearest-neighbour x2 without a Resize node (Resize's float32 `scales` input would not survive the float16
    conversion): [b, c, h, w] -> [b, c, 2h, 2w]."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, h * 2, w * 2)


class Attention(nn.Module):
    """Multi-head attention; keys and values from `context` (cross) or from x (self), optional additive mask."""

    def __init__(self, dim, context_dim, heads):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(context_dim, dim)
        self.v = nn.Linear(context_dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, context, mask=None):
        b, n, _ = x.shape
        m = context.shape[1]
        q = self.q(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(context).reshape(b, m, self.heads, self.head_dim).transpose(1, 2)
        v = self.v(context).reshape(b, m, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(2, 3)) * (self.head_dim ** -0.5)
        if mask is not None:
            scores = scores + mask
        attn = torch.softmax(scores, dim=-1)
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        return self.out(y)


class TinyClipText(nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(len(VOCAB), WIDTH)
        self.position_embedding = nn.Parameter(torch.zeros(MAX_LEN, WIDTH))
        self.ln1 = nn.LayerNorm(WIDTH, eps=1e-5)
        self.attn = Attention(WIDTH, WIDTH, HEADS)
        self.ln2 = nn.LayerNorm(WIDTH, eps=1e-5)
        self.fc1 = nn.Linear(WIDTH, INTERMEDIATE)
        self.fc2 = nn.Linear(INTERMEDIATE, WIDTH)
        self.final_layer_norm = nn.LayerNorm(WIDTH, eps=1e-5)

    def forward(self, input_ids):
        seq = input_ids.shape[1]
        positions = torch.arange(seq)
        x = self.token_embedding(input_ids) + self.position_embedding[positions]
        causal = (positions[None, :] > positions[:, None]).to(x.dtype) * -10000.0  # [L, L], finite for float16
        h = self.ln1(x)
        x = x + self.attn(h, h, causal)
        x = x + self.fc2(quick_gelu(self.fc1(self.ln2(x))))
        last = self.final_layer_norm(x)
        # CLIPTextModel's pooler: the hidden state at argmax(input_ids) (int32 for ArgMax, as transformers does)
        eos_at = input_ids.to(torch.int32).argmax(dim=-1)
        pick = (positions[None, :] == eos_at[:, None]).to(last.dtype)  # one-hot [b, L]
        pooled = (last * pick[:, :, None]).sum(dim=1)
        return last, pooled


class TimeProj(nn.Module):
    """diffusers' Timesteps(num_channels, flip_sin_to_cos=True, downscale_freq_shift=0), in float32 whatever the
    network's dtype (diffusers computes `timesteps[:, None].float() * freqs`); the caller casts the result back."""

    def __init__(self, channels):
        super().__init__()
        half = channels // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half))

    def forward(self, timestep):
        t = timestep.reshape(-1).float()  # scalar, [1] or [b] -> [n]
        arg = t[:, None] * self.freqs[None, :]
        return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1).float()


class TinyUNet(nn.Module):
    def __init__(self, cross_dim=WIDTH):
        super().__init__()
        self.time_proj = TimeProj(UNET_CH)
        self.time_linear_1 = nn.Linear(UNET_CH, TEMB)
        self.time_linear_2 = nn.Linear(TEMB, TEMB)
        self.conv_in = nn.Conv2d(4, UNET_CH, 3, padding=1)
        self.res_temb = nn.Linear(TEMB, UNET_CH)
        self.res_conv = nn.Conv2d(UNET_CH, UNET_CH, 3, padding=1)
        self.down = nn.Conv2d(UNET_CH, UNET_CH2, 3, stride=2, padding=1)
        self.down_temb = nn.Linear(TEMB, UNET_CH2)
        self.attn_norm = nn.LayerNorm(UNET_CH2, eps=1e-5)
        self.attn = Attention(UNET_CH2, cross_dim, HEADS)
        self.up_conv = nn.Conv2d(UNET_CH2, UNET_CH, 3, padding=1)
        self.cat_conv = nn.Conv2d(2 * UNET_CH, UNET_CH, 3, padding=1)
        self.conv_out = nn.Conv2d(UNET_CH, 4, 3, padding=1)
        # eps = 0.9 sample + 0.4 net(...): like a trained noise predictor, mostly the noisy input at high noise, so
        # DDIM's x0 = (x - sqrt(1 - a) eps) / sqrt(a) stays O(1) instead of amplifying a random eps
        self.skip_gain, self.net_gain = 0.9, 0.4

    def forward(self, sample, timestep, encoder_hidden_states):
        act = torch.nn.functional.silu
        temb = self.time_proj(timestep).to(sample.dtype)
        temb = act(self.time_linear_2(act(self.time_linear_1(temb))))  # [n, TEMB], n = 1 or b
        h0 = self.conv_in(sample)
        h = h0 + self.res_temb(temb)[:, :, None, None]
        skip = h0 + self.res_conv(act(h))
        d = self.down(act(skip)) + self.down_temb(temb)[:, :, None, None]
        b, c, hh, ww = d.shape
        tokens = d.reshape(b, c, hh * ww).transpose(1, 2)
        tokens = tokens + self.attn(self.attn_norm(tokens), encoder_hidden_states)
        d = tokens.transpose(1, 2).reshape(b, c, hh, ww)
        u = self.up_conv(act(upsample2(d)))
        u = self.cat_conv(torch.cat([u, skip], dim=1))
        return self.skip_gain * sample + self.net_gain * self.conv_out(act(u))


class TinyVaeDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(4, VAE_CH, 3, padding=1)
        self.conv_up = nn.Conv2d(VAE_CH, VAE_CH, 3, padding=1)
        self.conv_out = nn.Conv2d(VAE_CH, 3, 3, padding=1)

    def forward(self, latent_sample):
        act = torch.nn.functional.silu
        h = act(self.conv_in(latent_sample))
        h = act(self.conv_up(upsample2(h)))
        return self.conv_out(h)


class TinyVaeEncoder(nn.Module):
    """sample [b, 3, H, W] -> latent_parameters [b, 8, H/2, W/2] (mean, logvar), or with `mean_only` the mean
    [b, 4, H/2, W/2] (the older `latent_sample` output; the mode of the distribution, so deterministic)."""

    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, VAE_CH, 3, padding=1)
        self.conv_down = nn.Conv2d(VAE_CH, VAE_CH, 3, stride=2, padding=1)
        self.conv_out = nn.Conv2d(VAE_CH, 8, 3, padding=1)
        self.mean_only = False

    def forward(self, sample):
        act = torch.nn.functional.silu
        p = self.conv_out(act(self.conv_down(act(self.conv_in(sample)))))
        return p[:, :4] if self.mean_only else p


def init_weights(module, gen, gain=1.0):
    """N(0, gain^2 / fan_in) weights, N(0, 0.1^2) biases, layer norms near identity, N(0, 1) embeddings."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if isinstance(dict(module.named_modules()).get(name.rsplit(".", 1)[0]), nn.LayerNorm):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("token_embedding.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif name.endswith("position_embedding"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                p.copy_(gain * torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def scale_last(layer, factor):
    with torch.no_grad():
        layer.weight.mul_(factor)
        layer.bias.mul_(factor)


def build_networks():
    gen = torch.Generator().manual_seed(SEED)
    text, unet, dec, enc = TinyClipText(), TinyUNet(), TinyVaeDecoder(), TinyVaeEncoder()
    for m in (text, unet, dec, enc):
        init_weights(m, gen, gain=1.4)
        m.eval()
    with torch.no_grad():
        # the prompt should visibly steer the noise prediction: strengthen the cross-attention output
        scale_last(unet.attn.out, 3.0)
        # outputs O(1): scale each network's last layer to a fixed std on representative inputs
        probe_ids = torch.tensor([lookup_ids(p) for p in ["a red cat", "a blue dog on the cat", "", "dog"]])
        ctx = text(probe_ids)[0]
        x = torch.randn(4, 4, 6, 8, generator=gen)
        t = torch.tensor([900.0, 500.0, 100.0, 1.0])
        unet.skip_gain, unet.net_gain = 0.0, 1.0
        eps = torch.stack([unet(x[i:i + 1], t[i], ctx[i:i + 1])[0] for i in range(4)])
        scale_last(unet.conv_out, 1.0 / float(eps.std()))
        unet.skip_gain, unet.net_gain = 0.9, 0.4
        img = dec(2.0 * torch.randn(4, 4, 6, 8, generator=gen))
        scale_last(dec.conv_out, 0.6 / float(img.std()))
        p = enc(torch.rand(4, 3, 12, 16, generator=gen) * 2 - 1)
        scale_last(enc.conv_out, 1.0 / float(p.std()))
    return text, unet, dec, enc


def describe_sensitivity(text, unet):
    """Print how much prompt and timestep move the UNet output (both must matter for the tests to mean anything)."""
    with torch.no_grad():
        ids = torch.tensor([lookup_ids("a red cat"), lookup_ids("a blue dog")])
        ctx = text(ids)[0]
        x = torch.randn(1, 4, 4, 6, generator=torch.Generator().manual_seed(1))
        e_red = unet(x, torch.tensor(500.0), ctx[:1])
        e_blue = unet(x, torch.tensor(500.0), ctx[1:])
        e_t = unet(x, torch.tensor(100.0), ctx[:1])
        print(f"unet eps std {float(e_red.std()):.3f}; prompt change moves it by std {float((e_red - e_blue).std()):.3f};"
              f" timestep 500->100 by std {float((e_red - e_t).std()):.3f}")


# ------------------------------------------------------------------------------------------------ export
def export(module, args, input_names, output_names, dynamic_axes):
    f = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, f, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True)
    model = onnx.load_from_string(f.getvalue())
    model.producer_name = "genservice-tests (torch.onnx %s)" % torch.__version__
    model.producer_version = ""
    return model


def to_float16(model, keep_float32_scope="/time_proj/"):
    """Float16 conversion of an exported float32 graph, graph inputs and outputs included (keep_io_types false):
    float initializers, Constant values and Cast(to=float) become float16. Nodes under `keep_float32_scope` (the
    timestep sinusoid) stay float32, as in a diffusers float16 export: the float cast that enters that region keeps
    to=float and the casts that leave it become to=float16."""
    model = copy.deepcopy(model)
    g = model.graph
    region = {n.name for n in g.node if n.name.startswith(keep_float32_scope)}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)
    region_only_inputs = {i for i, users in consumers.items() if all(u in region for u in users)}

    def half_tensor(t):
        if t.data_type != TensorProto.FLOAT:
            return t
        h = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name)
        t.CopyFrom(h)
        return t

    for init in g.initializer:
        if init.name not in region_only_inputs:
            half_tensor(init)
    for n in g.node:
        if n.name in region:
            if n.op_type == "Cast" and any(o not in region for o_ in n.output for o in consumers.get(o_, [])):
                for a in n.attribute:
                    if a.name == "to":
                        a.i = TensorProto.FLOAT16
            continue
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            if a.type == onnx.AttributeProto.TENSOR:
                half_tensor(a.t)
    for vi in list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def export_text_encoder(text, ids_dtype):
    ids = torch.tensor([lookup_ids("a red cat"), lookup_ids("")], dtype=ids_dtype)
    return export(text, (ids,), ["input_ids"], ["last_hidden_state", "pooler_output"],
                  {"input_ids": {0: "batch_size", 1: "sequence_length"},
                   "last_hidden_state": {0: "batch_size", 1: "sequence_length"},
                   "pooler_output": {0: "batch_size"}})


def export_unet(unet, timestep_kind):
    sample = torch.randn(2, 4, 4, 6)
    ctx = torch.randn(2, MAX_LEN, unet.attn.k.in_features)
    axes = {"sample": {0: "batch_size", 2: "height", 3: "width"},
            "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
            "out_sample": {0: "batch_size", 2: "height", 3: "width"}}
    if timestep_kind == "scalar":  # current Optimum: a float scalar with no dimension
        t = torch.tensor(667.0)
    elif timestep_kind == "int64[1]":  # older exporters: int64 of fixed shape [1]
        t = torch.tensor([667], dtype=torch.int64)
    else:  # diffusers' conversion script: float [batch]
        t = torch.tensor([667.0, 667.0])
        axes["timestep"] = {0: "batch_size"}
    return export(unet, (sample, t, ctx), ["sample", "timestep", "encoder_hidden_states"], ["out_sample"], axes)


def export_vae_decoder(dec):
    return export(dec, (torch.randn(1, 4, 4, 6),), ["latent_sample"], ["sample"],
                  {"latent_sample": {0: "batch_size", 2: "latent_height", 3: "latent_width"},
                   "sample": {0: "batch_size", 2: "latent_height * 2", 3: "latent_width * 2"}})


def export_vae_encoder(enc, output_name):
    enc = copy.deepcopy(enc)
    enc.mean_only = output_name == "latent_sample"
    return export(enc, (torch.randn(1, 3, 8, 12),), ["sample"], [output_name],
                  {"sample": {0: "batch_size", 2: "sample_height", 3: "sample_width"},
                   output_name: {0: "batch_size", 2: "sample_height / 2", 3: "sample_width / 2"}})


# ------------------------------------------------------------------------------------------------ configs
DIFFUSERS_VERSION = "0.30.0"


def model_index(scheduler_class, tokenizer_class="CLIPTokenizer"):
    """StableDiffusionPipeline.save_config's model_index.json, as `optimum-cli export onnx` leaves it."""
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": DIFFUSERS_VERSION,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", scheduler_class],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", tokenizer_class],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def text_encoder_config(torch_dtype):
    """CLIPTextConfig.save_pretrained. bos/eos/pad ids are the legacy CLIP values (0/2/1) SD 1.x's text_encoder
    config carries; the real special-token ids come from the tokenizer files."""
    return {
        "_name_or_path": "genservice/tiny-clip-text",
        "architectures": ["CLIPTextModel"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "dropout": 0.0,
        "eos_token_id": 2,
        "hidden_act": "quick_gelu",
        "hidden_size": WIDTH,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": MAX_LEN,
        "model_type": "clip_text_model",
        "num_attention_heads": HEADS,
        "num_hidden_layers": 1,
        "pad_token_id": 1,
        "projection_dim": WIDTH,
        "torch_dtype": torch_dtype,
        "transformers_version": "4.44.2",
        "vocab_size": len(VOCAB),
    }


def unet_config(cross_dim=WIDTH):
    return {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": DIFFUSERS_VERSION,
        "act_fn": "silu",
        "attention_head_dim": UNET_CH2 // HEADS,
        "block_out_channels": [UNET_CH, UNET_CH2],
        "center_input_sample": False,
        "cross_attention_dim": cross_dim,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 4,
        "layers_per_block": 1,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 4,
        "out_channels": 4,
        "sample_size": 4,
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    }


def vae_config(scaling_factor):
    """AutoencoderKL's config (Optimum writes it to both vae_encoder/ and vae_decoder/). Without `scaling_factor`
    it is the SD 1.x original (diffusers 0.6), whose readers use the 0.18215 default."""
    cfg = {
        "_class_name": "AutoencoderKL",
        "_diffusers_version": DIFFUSERS_VERSION,
        "act_fn": "silu",
        "block_out_channels": [VAE_CH, VAE_CH],
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "force_upcast": True,
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "out_channels": 3,
        "sample_size": 8,
        "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    }
    if scaling_factor is None:
        cfg["_diffusers_version"] = "0.6.0"
        del cfg["scaling_factor"], cfg["force_upcast"]
    return cfg


def scheduler_config(class_name, beta_schedule="scaled_linear", original=False):
    """SD 1.x's scheduler_config.json (PNDMScheduler) as current diffusers saves it, or the same schedule under
    another _class_name; `original`: the file SD 1.x shipped (diffusers 0.6: no prediction_type, no
    timestep_spacing, whose defaults are epsilon and leading)."""
    if original:
        return {"_class_name": class_name, "_diffusers_version": "0.6.0", "beta_end": 0.012,
                "beta_schedule": beta_schedule, "beta_start": 0.00085, "num_train_timesteps": 1000,
                "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
                "clip_sample": False}
    cfg = {
        "_class_name": class_name,
        "_diffusers_version": DIFFUSERS_VERSION,
        "beta_end": 0.012,
        "beta_schedule": beta_schedule,
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "trained_betas": None,
    }
    if class_name == "DDIMScheduler":  # DDIMScheduler's own keys (no skip_prk_steps)
        del cfg["skip_prk_steps"]
        cfg.update({"clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.995, "rescale_betas_zero_snr": False,
                    "sample_max_value": 1.0, "thresholding": False})
        cfg = dict(sorted(cfg.items()))
    return cfg


# ------------------------------------------------------------------------------------------------ variants
BASE = dict(ids=torch.int32, timestep="scalar", fp16=False, encoder="latent_parameters", external=False,
            tokenizer="files", scheduler="PNDMScheduler", scaling_factor=0.5, original_configs=False)
VARIANTS = {
    "base": ("current Optimum's names and shapes: timestep float32 scalar, float32 graphs, vae_encoder -> "
             "latent_parameters (mean, logvar); input_ids int32 [batch, sequence] (as diffusers' conversion script "
             "writes them; Optimum's own default is int64, see int64-ids); VAE scaling_factor 0.5", {}),
    "int64-ids": ("input_ids int64 (what `optimum-cli export onnx` writes by default: int_dtype \"int64\")",
                  dict(ids=torch.int64)),
    "timestep-int64": ("unet timestep int64 of fixed shape [1] (older exporters)", dict(timestep="int64[1]")),
    "timestep-batch": ("unet timestep float32 [batch] (diffusers' conversion script); and SD 1.x's original "
                       "configs of that era: vae config without scaling_factor (so the 0.18215 default applies), "
                       "scheduler_config without prediction_type and timestep_spacing (defaults epsilon, leading)",
                       dict(timestep="batch", scaling_factor=None, original_configs=True)),
    "fp16": ("every graph float16, inputs and outputs included (input_ids stay int32); the timestep sinusoid is "
             "computed in float32 inside the unet, as in a diffusers float16 export", dict(fp16=True)),
    "latent-sample": ("vae_encoder output `latent_sample` [b, 4, h, w] (the older form); here it is the MEAN of the "
                      "latent distribution, so the tiny model stays deterministic", dict(encoder="latent_sample")),
    "no-vae-encoder": ("no vae_encoder folder (text-to-image only)", dict(encoder=None)),
    "external-data": ("unet weights in external data: unet/model.onnx + unet/model.onnx_data",
                      dict(external=True)),
    "tokenizer-json": ("tokenizer/tokenizer.json (fast-tokenizer form) instead of vocab.json + merges.txt",
                       dict(tokenizer="json")),
    "scheduler-ddim": ("scheduler_config.json names DDIMScheduler (same schedule)", dict(scheduler="DDIMScheduler")),
}

BROKEN = {
    "broken-unet-missing": ("unet/model.onnx is missing (unet/config.json is there)", "unet/model.onnx", None),
    "broken-model-index-not-json": ("model_index.json is not JSON", "model_index.json", None),
    "broken-unet-no-encoder-hidden-states": (
        "the unet's third input is named `context` instead of `encoder_hidden_states`",
        "unet/model.onnx", "encoder_hidden_states"),
    "broken-unknown-beta-schedule": ("scheduler_config.json's beta_schedule is \"cosine\" (diffusers' name for it is "
                                     "squaredcos_cap_v2)", "scheduler/scheduler_config.json", "beta_schedule"),
    "broken-no-tokenizer-vocab": ("tokenizer/ has tokenizer_config.json but neither vocab.json + merges.txt nor "
                                  "tokenizer.json", "tokenizer/vocab.json", None),
    "broken-cross-attention-width": (
        "the unet's encoder_hidden_states is [batch, sequence, 12] but the text encoder's last_hidden_state is "
        "[batch, sequence, 16] (unet/config.json cross_attention_dim 12)", "unet/model.onnx", "encoder_hidden_states"),
}


def write_json(path, obj, sort_keys=False):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=2, sort_keys=sort_keys, ensure_ascii=False)
        f.write("\n")


def write_reference(path, obj):
    """JSON with objects indented and arrays of numbers on one line (keeps the file small and diffable)."""
    def fmt(o, ind):
        pad = "  " * (ind + 1)
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {fmt(v, ind + 1)}" for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * ind + "}"
        if isinstance(o, list) and any(isinstance(v, (dict, list)) for v in o):
            return "[\n" + ",\n".join(pad + fmt(v, ind + 1) for v in o) + "\n" + "  " * ind + "]"
        return json.dumps(o, ensure_ascii=False)

    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(fmt(obj, 0) + "\n")


def save_graph(model, folder, external):
    model = copy.deepcopy(model)  # saving as external data rewrites the tensors in place
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    if external:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx_data", size_threshold=0)
        onnx.checker.check_model(path, full_check=True)
    else:
        onnx.checker.check_model(model, full_check=True)
        onnx.save_model(model, path)


def write_folder(name, opts, graphs, mutate=None):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    fp16 = opts["fp16"]
    conv = to_float16 if fp16 else (lambda m: m)
    text_key = ("text", opts["ids"])
    save_graph(conv(graphs[text_key]), os.path.join(out, "text_encoder"), False)
    write_json(os.path.join(out, "text_encoder", "config.json"), text_encoder_config("float16" if fp16 else "float32"))
    unet_model = conv(graphs[("unet", opts["timestep"])])
    if mutate == "rename-ehs":
        # A copy: the graph object is shared with the folders written after this one.
        renamed = onnx.ModelProto()
        renamed.CopyFrom(unet_model)
        unet_model = renamed
        rename_input(unet_model, "encoder_hidden_states", "context")
    if mutate == "cross-12":
        unet_model = graphs[("unet-cross12",)]
    save_graph(unet_model, os.path.join(out, "unet"), opts["external"])
    write_json(os.path.join(out, "unet", "config.json"), unet_config(12 if mutate == "cross-12" else WIDTH))
    save_graph(conv(graphs[("vae_decoder",)]), os.path.join(out, "vae_decoder"), False)
    write_json(os.path.join(out, "vae_decoder", "config.json"), vae_config(opts["scaling_factor"]))
    if opts["encoder"]:
        save_graph(conv(graphs[("vae_encoder", opts["encoder"])]), os.path.join(out, "vae_encoder"), False)
        write_json(os.path.join(out, "vae_encoder", "config.json"), vae_config(opts["scaling_factor"]))
    tok = os.path.join(out, "tokenizer")
    os.makedirs(tok)
    if opts["tokenizer"] == "json":
        write_tokenizer_json(tok)
    else:
        write_tokenizer_files(tok)
    os.makedirs(os.path.join(out, "scheduler"))
    sched = scheduler_config(opts["scheduler"], "cosine" if mutate == "beta-cosine" else "scaled_linear",
                             opts["original_configs"])
    write_json(os.path.join(out, "scheduler", "scheduler_config.json"), sched)
    write_json(os.path.join(out, "model_index.json"),
               model_index(opts["scheduler"], "CLIPTokenizerFast" if opts["tokenizer"] == "json" else "CLIPTokenizer"))
    if mutate == "unet-missing":
        os.remove(os.path.join(out, "unet", "model.onnx"))
    if mutate == "index-not-json":
        with open(os.path.join(out, "model_index.json"), "w", encoding="utf-8", newline="\n") as f:
            f.write('{\n  "_class_name": "StableDiffusionPipeline",\n  "unet": ["diffusers", "UNet2DConditionModel"\n')
    if mutate == "no-vocab":
        for f in ("vocab.json", "merges.txt"):
            os.remove(os.path.join(tok, f))
    return out


def rename_input(model, old, new):
    for vi in model.graph.input:
        if vi.name == old:
            vi.name = new
    for n in model.graph.node:
        for i, x in enumerate(n.input):
            if x == old:
                n.input[i] = new


# ------------------------------------------------------------------------------------------------ I/O table
DTYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.INT32: "int32",
          TensorProto.INT64: "int64"}


def io_signature(path):
    m = onnx.load(path, load_external_data=False)

    def one(vi):
        tt = vi.type.tensor_type
        dims = [d.dim_param if d.dim_param else d.dim_value for d in tt.shape.dim]
        return {"name": vi.name, "dtype": DTYPES[tt.elem_type], "shape": dims}

    return {"inputs": [one(v) for v in m.graph.input], "outputs": [one(v) for v in m.graph.output]}


def fmt_shape(dims):
    return "[" + ", ".join(str(d) for d in dims) + "]" if dims else "[] (scalar)"


def folder_size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


# ------------------------------------------------------------------------------------------------ reference
REQUESTS = [
    dict(name="guided-empty-negative-8x8", prompt="a red cat", negative_prompt=None, guidance_scale=3.0,
         height=8, width=8, seed=11),
    dict(name="guided-negative-8x12", prompt="a blue dog on a red cat", negative_prompt="the cat",
         guidance_scale=3.0, height=8, width=12, seed=12),
    dict(name="unguided-8x12", prompt="a dog", negative_prompt=None, guidance_scale=1.0, height=8, width=12, seed=13),
]
VARIANT_REQUEST = "guided-negative-8x12"
TOKENIZER_CASES = ["A  Red, CAT!", "zebra 42 rede", "blues dogs cats", "the red cat on the blue dog"]
STEPS, ETA = 3, 0.0


def r9(a):
    """float32-exact decimal rendering: 9 significant digits round-trip any float32."""
    return [float(f"{v:.9g}") for v in np.asarray(a, dtype=np.float64).ravel()]


def tensor_json(a):
    a = np.asarray(a)
    return {"shape": list(a.shape), "data": r9(a)}


def ddim_cfg(sched):
    """The scheduler config as make_reference's DDIM reads it (diffusers' defaults for absent keys)."""
    return dict(num_train_timesteps=sched["num_train_timesteps"], beta_schedule=sched["beta_schedule"],
                beta_start=sched["beta_start"], beta_end=sched["beta_end"],
                prediction_type=sched.get("prediction_type", "epsilon"), clip_sample=sched.get("clip_sample", True),
                clip_sample_range=sched.get("clip_sample_range", 1.0),
                set_alpha_to_one=sched.get("set_alpha_to_one", True), steps_offset=sched.get("steps_offset", 0),
                timestep_spacing=sched.get("timestep_spacing", "leading"))


def run_pipeline(text, unet, dec, tokenize, req, scaling_factor, sched_cfg, detail):
    """x = latents; per DDIM step eps = u + g (c - u) (uncond first in the batch; g = 1: cond only);
    image = vae_decoder(x / scaling_factor), raw."""
    cond_ids = tokenize(req["prompt"])
    uncond_ids = tokenize(req["negative_prompt"] or "")
    guided = req["guidance_scale"] > 1.0
    with torch.no_grad():
        emb = text(torch.tensor([uncond_ids, cond_ids], dtype=torch.int64))[0]
    rng = np.random.default_rng(req["seed"])
    latents = rng.standard_normal((1, 4, req["height"] // 2, req["width"] // 2)).astype(np.float32)
    ddim = make_reference.Ddim(sched_cfg, STEPS, ETA)
    x = latents.astype(np.float64)
    steps = []
    for i, t in enumerate(ddim.timesteps):
        xin = torch.tensor(x, dtype=torch.float32)
        with torch.no_grad():
            if guided:
                out = unet(torch.cat([xin, xin]), torch.tensor(float(t)), emb).double().numpy()
                u, c = out[:1], out[1:]
                eps = u + req["guidance_scale"] * (c - u)
            else:
                u, c = None, unet(xin, torch.tensor(float(t)), emb[1:]).double().numpy()
                eps = c
        x = ddim.step(eps, i, x, None)
        a_t = ddim.acp[int(t)]
        prev_t = int(t) - sched_cfg["num_train_timesteps"] // STEPS
        a_prev = ddim.acp[prev_t] if prev_t >= 0 else ddim.final
        step = {"timestep": int(t), "alpha_prod_t": float(a_t), "alpha_prod_t_prev": float(a_prev)}
        if detail:
            if guided:
                step["eps_uncond"] = tensor_json(u)
            step["eps_cond"] = tensor_json(c)
            step["eps"] = tensor_json(eps)
            step["x_after"] = tensor_json(x)
        steps.append(step)
    with torch.no_grad():
        image = dec(torch.tensor(x / scaling_factor, dtype=torch.float32)).double().numpy()
    return {"cond_ids": cond_ids, "uncond_ids": uncond_ids if guided else None, "latents": tensor_json(latents),
            "steps": steps, "image": tensor_json(image), "_image": image, "_emb": emb}


def main():
    check_merges_build_words()
    clip_bpe, clip_bpe_path = load_clip_bpe()
    print("vocabulary", len(VOCAB), "merges", len(MERGES), "bos", BOS, "eos", EOS)

    text, unet, dec, enc = build_networks()
    describe_sensitivity(text, unet)
    unet12 = TinyUNet(cross_dim=12)
    init_weights(unet12, torch.Generator().manual_seed(SEED + 1))
    unet12.eval()

    graphs = {("text", torch.int32): export_text_encoder(text, torch.int32),
              ("text", torch.int64): export_text_encoder(text, torch.int64),
              ("unet", "scalar"): export_unet(unet, "scalar"),
              ("unet", "int64[1]"): export_unet(unet, "int64[1]"),
              ("unet", "batch"): export_unet(unet, "batch"),
              ("unet-cross12",): export_unet(unet12, "scalar"),
              ("vae_decoder",): export_vae_decoder(dec),
              ("vae_encoder", "latent_parameters"): export_vae_encoder(enc, "latent_parameters"),
              ("vae_encoder", "latent_sample"): export_vae_encoder(enc, "latent_sample")}

    table = {}
    for name, (_, over) in VARIANTS.items():
        out = write_folder(name, {**BASE, **over}, graphs)
        table[name] = {g: io_signature(os.path.join(out, g, "model.onnx"))
                       for g in ("text_encoder", "unet", "vae_decoder", "vae_encoder")
                       if os.path.exists(os.path.join(out, g, "model.onnx"))}
    mutations = {"broken-unet-missing": "unet-missing", "broken-model-index-not-json": "index-not-json",
                 "broken-unet-no-encoder-hidden-states": "rename-ehs", "broken-unknown-beta-schedule": "beta-cosine",
                 "broken-no-tokenizer-vocab": "no-vocab", "broken-cross-attention-width": "cross-12"}
    for name, (why, file, field) in BROKEN.items():
        out = write_folder(name, dict(BASE), graphs, mutations[name])
        with open(os.path.join(out, "expected_error.txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write(f"file: {file}\n")
            if field:
                f.write(f"field: {field}\n")
        with open(os.path.join(out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
            f.write(f"Broken on purpose: {why}. The loader's error must name {file}"
                    + (f" and {field}" if field else "") + " (expected_error.txt).\n")

    # tokenizer: the project's CLIP BPE over the written base tokenizer files, cross-checked against whole-word lookup
    if clip_bpe is not None:
        bpe = clip_bpe.ClipBpe.from_folder(os.path.join(HERE, "base", "tokenizer"))
        tokenize, tokenizer_used = bpe, clip_bpe_path
    else:
        tokenize, tokenizer_used = lookup_ids, "whole-word vocabulary lookup (clip_bpe.py not found)"
    prompts = sorted({r["prompt"] for r in REQUESTS} | {r["negative_prompt"] or "" for r in REQUESTS})
    for p in prompts:
        assert tokenize(p) == lookup_ids(p), (p, tokenize(p), lookup_ids(p))
    print("tokenizer:", tokenizer_used)

    base_sched = scheduler_config("PNDMScheduler")
    cfg = ddim_cfg(base_sched)
    ddim = make_reference.Ddim(cfg, STEPS, ETA)
    ref = {
        "_comment": "Written by make_tiny_txt2img.py (see its header); torch float32 networks with the base weights, "
                    "float64 DDIM (make_reference.Ddim, eta 0). image = vae_decoder(x / scaling_factor), raw (no clamp).",
        "command": "/usr/bin/python3 tests/GenService.Generation.Tests/TestModels/txt2img/make_tiny_txt2img.py",
        "tokenizer": tokenizer_used,
        "vocabulary": {"size": len(VOCAB), "bos": BOS, "eos": EOS, "pad": EOS, "model_max_length": MAX_LEN},
        "tolerance": {"fp32_max_abs": FP32_TOLERANCE, "fp16_max_abs": FP16_TOLERANCE,
                      "fp16_measured_max_abs": FP16_MEASURED},
        "scheduler": {"config": cfg, "steps": STEPS, "eta": ETA, "timesteps": [int(t) for t in ddim.timesteps],
                      "init_noise_sigma": 1.0},
        "scaling_factor": 0.5,
        "tokens": {p: tokenize(p) for p in prompts},
        # more prompts through the same tokenizer (padded call): case, punctuation, words outside the merges
        "tokenizer_cases": {p: tokenize(p) for p in TOKENIZER_CASES} if clip_bpe is not None else None,
        "text_encoder": {},
        "requests": [],
        "variants": {},
    }
    with torch.no_grad():
        for p in prompts:
            last, pooled = text(torch.tensor([tokenize(p)]))
            ref["text_encoder"][p] = {"last_hidden_state": tensor_json(last.numpy()),
                                      "pooler_output": tensor_json(pooled.numpy())}
    for req in REQUESTS:
        res = run_pipeline(text, unet, dec, tokenize, req, 0.5, cfg, detail=True)
        entry = {k: v for k, v in req.items() if k != "seed"}
        entry.update(steps_count=STEPS, sampler="ddim", eta=ETA)
        entry.update({k: v for k, v in res.items() if not k.startswith("_")})
        ref["requests"].append(entry)
        img = res["_image"]
        print(f"request {req['name']}: image {img.shape} mean {img.mean():+.3f} std {img.std():.3f}"
              f" min {img.min():+.3f} max {img.max():+.3f}")
    base_image = None
    req = next(r for r in REQUESTS if r["name"] == VARIANT_REQUEST)
    for name, (_, over) in VARIANTS.items():
        opts = {**BASE, **over}
        sf = opts["scaling_factor"] if opts["scaling_factor"] is not None else 0.18215
        sched = scheduler_config(opts["scheduler"], original=opts["original_configs"])
        res = run_pipeline(text, unet, dec, tokenize, req, sf, ddim_cfg(sched), detail=False)
        if base_image is None:
            base_image = res["_image"]
        ref["variants"][name] = {
            "request": VARIANT_REQUEST, "scaling_factor": sf, "scheduler_class": opts["scheduler"],
            "tolerance_max_abs": FP16_TOLERANCE if opts["fp16"] else FP32_TOLERANCE,
            "image": res["image"],
            "max_abs_diff_from_base": float(np.abs(res["_image"] - base_image).max())}
    # vae encoder on one image: latent_parameters (base) and latent_sample = its first 4 channels (latent-sample)
    image = np.random.default_rng(21).uniform(-1, 1, (1, 3, 8, 12)).astype(np.float32)
    with torch.no_grad():
        params = enc(torch.tensor(image)).numpy()
    ref["vae_encoder"] = {"sample": tensor_json(image), "latent_parameters": tensor_json(params),
                          "latent_sample_mean": tensor_json(params[:, :4])}
    write_reference(os.path.join(HERE, "reference.json"), ref)
    write_readme(table)
    for name in list(VARIANTS) + list(BROKEN):
        print(f"{name:40s} {folder_size(os.path.join(HERE, name)) / 1024:7.1f} KiB")


def write_readme(table):
    lines = [
        "# Tiny text-to-image export folders (test models)",
        "",
        "Written by `make_tiny_txt2img.py` (run: `/usr/bin/python3 tests/GenService.Generation.Tests/TestModels/"
        "txt2img/make_tiny_txt2img.py`). Every folder has the layout `optimum-cli export onnx` writes for a Stable "
        "Diffusion 1.x pipeline and the SAME weights, so the same request gives the same image from each "
        "(up to float16 rounding in `fp16`; `timestep-batch` uses the default scaling factor 0.18215, so its "
        "image differs by design). `reference.json` holds torch reference numbers (see the script's header).",
        "",
        "## Variants",
        "",
        "| folder | what differs from `base` |",
        "|---|---|",
    ]
    for name, (what, _) in VARIANTS.items():
        lines.append(f"| `{name}` | {what} |")
    lines += ["", "## Broken folders (expected_error.txt: `file:` the path the error must name, `field:` the field "
                  "or input, when there is one)", "", "| folder | fault | file | field |", "|---|---|---|---|"]
    for name, (why, file, field) in BROKEN.items():
        lines.append(f"| `{name}` | {why} | `{file}` | {('`' + field + '`') if field else ''} |")
    lines += ["", "## Graph I/O that differs from `base` (full tables below)", "",
              "| folder | graph | name | dtype | shape |", "|---|---|---|---|---|"]
    base_rows = {(g, d, v["name"]): v for g, sig in table["base"].items() for d in ("inputs", "outputs")
                 for v in sig[d]}
    for name, graphs in table.items():
        rows = {(g, d, v["name"]): v for g, sig in graphs.items() for d in ("inputs", "outputs") for v in sig[d]}
        for key, v in rows.items():
            if base_rows.get(key) != v:
                lines.append(f"| `{name}` | {key[0]} {key[1][:-1]} | `{v['name']}` | {v['dtype']} | "
                             f"{fmt_shape(v['shape'])} |")
        for key in base_rows:
            if key not in rows:
                lines.append(f"| `{name}` | {key[0]} {key[1][:-1]} | `{key[2]}` | (absent) | |")
    lines += ["", "## Graph inputs and outputs, as each graph declares them (onnx)", "",
              "Symbolic dimensions are shown by name, fixed ones by value; `[]` is a rank-0 scalar. The dimension "
              "names are Optimum's (e.g. `sample_height / 2`), which are labels only: a loader must not parse them.",
              ""]
    for name, graphs in table.items():
        lines += [f"### `{name}`", "", "| graph | direction | name | dtype | shape |", "|---|---|---|---|---|"]
        for g, sig in graphs.items():
            for direction in ("inputs", "outputs"):
                for v in sig[direction]:
                    lines.append(f"| {g} | {direction[:-1]} | `{v['name']}` | {v['dtype']} | {fmt_shape(v['shape'])} |")
        lines.append("")
    lines += ["## reference.json", "",
              "Torch float32 networks with the base weights, float64 DDIM (tests/GenService.Sampling.Tests/Reference/"
              "make_reference.py's `Ddim`, eta 0, the base scheduler config: timesteps "
              "667, 334, 1 for 3 steps). Per request: prompt, negative prompt (null = empty prompt as the uncond), "
              "guidance scale, size, the token ids used (`cond_ids`, `uncond_ids`), the latents given explicitly, "
              "per step the timestep, alpha_prod_t, alpha_prod_t_prev, eps_uncond/eps_cond (the UNet rows: uncond "
              "first in a guided batch), eps = u + g (c - u) and x after the step, and `image` = "
              "vae_decoder(x / 0.5), raw. Guidance 1 runs the cond row only. `text_encoder` holds last_hidden_state "
              "and pooler_output per prompt; `tokens`/`tokenizer_cases` the padded ids; `vae_encoder` one image's "
              "latent_parameters (its first 4 channels are what `latent-sample`'s `latent_sample` returns). "
              "`variants.<folder>.image` is request `" + VARIANT_REQUEST + "` through that folder's configs (its "
              "scaling factor and scheduler class), with the tolerance to use.", "",
              f"Tolerances (max abs difference on images, values within about +-5): float32 folders "
              f"{FP32_TOLERANCE:g} (ONNX Runtime 1.31.1 CPU measured at most 7.6e-6), `fp16` {FP16_TOLERANCE:g} "
              f"(measured {FP16_MEASURED:g} end to end: float16 text encoder -> float16 unet -> float16 decoder, "
              "guidance and DDIM in float64 between graph calls).", "",
              "## Folder sizes", "", "| folder | bytes |", "|---|---|"]
    for name in list(VARIANTS) + list(BROKEN):
        lines.append(f"| `{name}` | {folder_size(os.path.join(HERE, name))} |")
    lines += ["", "Notes for a loader:", "",
              "- `timestep` comes in three forms: float scalar (`base`), int64 `[1]` (`timestep-int64`) and float "
              "`[batch]` (`timestep-batch`). Only the last lets one UNet call carry rows at different timesteps.",
              "- `input_ids` is int32 or int64 (`int64-ids`): read the declared type.",
              "- `fp16`: every float input and output is float16, the ids stay int32.",
              "- `vae_encoder` outputs either `latent_parameters` [b, 8, h, w] (mean then logvar) or `latent_sample` "
              "[b, 4, h, w]; `no-vae-encoder` has none.",
              "- `text_encoder/config.json` has the legacy bos/eos/pad ids 0/2/1 of SD 1.x; the tokenizer files "
              "hold the real ones.",
              "- The VAE factor is 2 here: 2^(len(block_out_channels) - 1) of vae_decoder/config.json.",
              ""]
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
