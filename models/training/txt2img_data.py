"""digits-txt2img data: captioned 3x32x32 renders of the scikit-learn digits, and the CLIP-format tokenizer.

Render: the 8x8 digit's grey levels (0..16) become coverage alpha = level / 16, upscaled bilinearly
(align_corners=False) to 16x16 ("small") or 24x24 ("large"), placed at the centre of a 32x32 canvas (offsets 8
and 4: on the VAE's 4-pixel latent grid), and composited: pixel = bg + alpha * (fg - bg), colours mapped from
0..255 to [-1, 1]. Foreground and background are two different colours of COLOURS.
The captioned data the text-to-image model learns (and is evaluated against) is centred (jitter 0). The VAE and
the evaluation classifier train on renders shifted by a random integer offset in [-JITTER, JITTER] on each axis,
for robustness; the UNet does not: shifts that are not multiples of the latent grid's 4 pixels scramble a
digit's latent code, and a first UNet trained on jittered renders learnt colours and sizes but not digits.

Caption grammar (one template, all lower case, words separated by single spaces):
    "a <size> <fg colour> <digit word> on a <bg colour> background"
    <size> := small | large;  <colour> := black | white | red | green | blue | yellow
    <digit word> := zero | one | two | three | four | five | six | seven | eight | nine
e.g. "a small red seven on a blue background". The empty caption "" is the unconditional prompt (classifier-free
guidance).

Tokenizer: CLIP's byte-level BPE in Hugging Face CLIPTokenizer's file format (vocab.json, merges.txt). The
vocabulary is CLIP's layout: the 256 byte symbols of GPT-2's bytes_to_unicode, the same 256 with "</w>", one
entry per merge, then <|startoftext|> and <|endoftext|>. The merges are learnt here by plain BPE training on
the caption words (most frequent pair first, ties by the pair's text), until every caption word is one
`word</w>` token; any other text still tokenizes (to byte-level symbols) but the model never saw it.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

COLOURS = {  # name -> RGB 0..255, chosen far apart (the classifier must tell them apart at a glance)
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
}
COLOUR_NAMES = list(COLOURS)
SIZES = {"small": 16, "large": 24}
SIZE_NAMES = list(SIZES)
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
JITTER = 2       # VAE and classifier training renders
DATA_JITTER = 0  # the captioned text-to-image data (UNet training, FID references)
IMAGE = 32
MAX_LEN = 16  # tokenizer model_max_length and text encoder max_position_embeddings

_RGB = torch.tensor([COLOURS[c] for c in COLOUR_NAMES], dtype=torch.float32) / 127.5 - 1.0


def caption(digit, size, fg, bg):
    return f"a {SIZE_NAMES[size]} {COLOUR_NAMES[fg]} {DIGIT_WORDS[digit]} on a {COLOUR_NAMES[bg]} background"


def caption_words():
    words = ["a", "on", "background"] + SIZE_NAMES + COLOUR_NAMES + DIGIT_WORDS
    return sorted(set(words))


def sample_attributes(n, rng, jitter=JITTER):
    """n random (size, fg, bg, dx, dy) with fg != bg, from a numpy RandomState."""
    size = rng.randint(0, len(SIZE_NAMES), n)
    fg = rng.randint(0, len(COLOUR_NAMES), n)
    bg = (fg + rng.randint(1, len(COLOUR_NAMES), n)) % len(COLOUR_NAMES)  # uniform over the other colours
    dx = rng.randint(-jitter, jitter + 1, n)
    dy = rng.randint(-jitter, jitter + 1, n)
    return size, fg, bg, dx, dy


def render(levels, size, fg, bg, dx, dy):
    """levels [N,64] int (0..16) and per-row attributes -> images [N,3,32,32] float32 in [-1,1]."""
    levels = torch.as_tensor(np.asarray(levels), dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    n = levels.shape[0]
    alpha = torch.zeros(n, 1, IMAGE, IMAGE)
    for s_idx, s_name in enumerate(SIZE_NAMES):
        rows = np.nonzero(np.asarray(size) == s_idx)[0]
        if len(rows) == 0:
            continue
        s = SIZES[s_name]
        up = F.interpolate(levels[rows], size=(s, s), mode="bilinear", align_corners=False).clamp(0, 1)
        base = (IMAGE - s) // 2
        for j, r in enumerate(rows):
            y0, x0 = base + int(dy[r]), base + int(dx[r])
            alpha[r, :, y0:y0 + s, x0:x0 + s] = up[j]
    fg_rgb = _RGB[torch.as_tensor(np.asarray(fg))][:, :, None, None]
    bg_rgb = _RGB[torch.as_tensor(np.asarray(bg))][:, :, None, None]
    return bg_rgb + alpha * (fg_rgb - bg_rgb)


# ------------------------------------------------------------------------------------------------ tokenizer
from clip_bpe import bytes_to_unicode  # noqa: E402  (GPT-2 / CLIP byte symbols, openai's code)


BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _symbols(word):
    b2u = bytes_to_unicode()
    chars = [b2u[b] for b in word.encode("utf-8")]
    return tuple(chars[:-1] + [chars[-1] + "</w>"])


def learn_merges(words):
    """Plain BPE training: merge the most frequent adjacent pair (ties: smallest pair text) over all words,
    each word counted once, until every word is a single symbol."""
    seqs = [list(_symbols(w)) for w in words]
    merges = []
    while any(len(s) > 1 for s in seqs):
        counts = {}
        for s in seqs:
            for p in zip(s, s[1:]):
                counts[p] = counts.get(p, 0) + 1
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        new = []
        for s in seqs:
            out, i = [], 0
            while i < len(s):
                if i < len(s) - 1 and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            new.append(out)
        seqs = new
    return merges


def build_vocab(merges):
    base = list(bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges] + [BOS, EOS]
    assert len(set(vocab)) == len(vocab)
    return {tok: i for i, tok in enumerate(vocab)}


class CaptionTokenizer:
    """Whole-word lookup for the caption grammar (train_txt2img.py checks that real BPE gives the same ids)."""

    def __init__(self):
        self.merges = learn_merges(caption_words())
        self.vocab = build_vocab(self.merges)
        self.bos, self.eos = self.vocab[BOS], self.vocab[EOS]
        self.pad = self.eos

    def __call__(self, text, max_len=MAX_LEN):
        ids = [self.vocab[w + "</w>"] for w in text.split()]
        ids = [self.bos] + ids[:max_len - 2] + [self.eos]
        return ids + [self.pad] * (max_len - len(ids))

    def batch(self, texts):
        return torch.tensor([self(t) for t in texts], dtype=torch.int64)

    def save(self, folder):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for a, b in self.merges:
                f.write(f"{a} {b}\n")
        special = {
            "bos_token": {"content": BOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
            "eos_token": {"content": EOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
            "pad_token": EOS,
            "unk_token": {"content": EOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        }
        with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
            json.dump(special, f, indent=2)
            f.write("\n")
        config = {
            "add_prefix_space": False,
            "bos_token": special["bos_token"] | {"__type": "AddedToken"},
            "clean_up_tokenization_spaces": True,
            "do_lower_case": True,
            "eos_token": special["eos_token"] | {"__type": "AddedToken"},
            "errors": "replace",
            "model_max_length": MAX_LEN,
            "pad_token": EOS,
            "tokenizer_class": "CLIPTokenizer",
            "unk_token": special["unk_token"] | {"__type": "AddedToken"},
        }
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
