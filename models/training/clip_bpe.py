"""CLIP's byte-level BPE tokenizer, as an independent Python reference for GenService's C# ClipTokenizer.

Transcribed from openai/CLIP's `clip/simple_tokenizer.py` (MIT licence, Copyright (c) 2021 OpenAI,
https://github.com/openai/CLIP), with two changes:

* it reads Hugging Face's file format, as a diffusers/Optimum `tokenizer/` folder carries it: `vocab.json`
  (token -> id), `merges.txt` (a "#version" first line, then one "a b" merge a line, in rank order) and an optional
  `tokenizer_config.json` (model_max_length, pad_token, bos_token, eos_token; a token may be a string or a
  {"content": ...} object);
* calling it behaves like Hugging Face's CLIPTokenizer as StableDiffusionPipeline calls it,
  `tokenizer(prompt, padding="max_length", max_length=model_max_length, truncation=True)`:
  ids = [bos] + bpe_ids[:max_length - 2] + [eos] + [pad] * (max_length - len(...)).

Cleaning is openai's: ftfy.fix_text, html.unescape twice, strip, whitespace collapsed, lower(). Where the ftfy
module is not installed (GenService's build machine has no Debian package of it, and no PyPI), fix_text is replaced
by NFC normalisation, which is what ftfy does to text that has no mojibake, curly quotes, ligatures, full-width
characters, control characters or terminal escapes; `FTFY_AVAILABLE` says which one ran. Prompts of those kinds are
therefore not in the fixture made from this file. (Hugging Face's slow CLIPTokenizer differs from openai's in not
html-unescaping; this file follows openai.)

Usage: from clip_bpe import ClipBpe; tok = ClipBpe.from_folder("path/to/tokenizer"); tok("a photo of a cat").
"""

import html
import json
import os
import unicodedata
from functools import lru_cache

import regex as re  # Debian: python3-regex (for \p{L} and \p{N})

try:
    import ftfy  # Debian has no package of it; used when present

    FTFY_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the machine
    ftfy = None
    FTFY_AVAILABLE = False

PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


@lru_cache()
def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters (openai's code)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    cs = [chr(n) for n in cs]
    return dict(zip(bs, cs))


def get_pairs(word):
    """Set of adjacent symbol pairs in a word (a tuple of symbols)."""
    pairs = set()
    prev_char = word[0]
    for char in word[1:]:
        pairs.add((prev_char, char))
        prev_char = char
    return pairs


def fix_text(text):
    if FTFY_AVAILABLE:
        return ftfy.fix_text(text)
    return unicodedata.normalize("NFC", text)


def basic_clean(text):
    text = fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r"\s+", " ", text)
    text = text.strip()
    return text


def _token_content(value):
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("content")
    return value


class ClipBpe:
    """openai's SimpleTokenizer over a Hugging Face vocab.json + merges.txt."""

    def __init__(self, encoder, merges, max_length=77, bos="<|startoftext|>", eos="<|endoftext|>", pad=None):
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.encoder = dict(encoder)
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = re.compile(PATTERN, re.IGNORECASE)
        self.max_length = int(max_length)
        self.bos_id = self.encoder[bos]
        self.eos_id = self.encoder[eos]
        self.pad_id = self.encoder[pad if pad is not None else eos]

    @classmethod
    def from_folder(cls, tokenizer_dir):
        with open(os.path.join(tokenizer_dir, "vocab.json"), encoding="utf-8") as f:
            encoder = json.load(f)
        with open(os.path.join(tokenizer_dir, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        merges = [tuple(line.split()) for line in lines if line.strip()]
        config = {}
        config_path = os.path.join(tokenizer_dir, "tokenizer_config.json")
        if os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        max_length = config.get("model_max_length", 77)
        bos = _token_content(config.get("bos_token")) or "<|startoftext|>"
        eos = _token_content(config.get("eos_token")) or "<|endoftext|>"
        pad = _token_content(config.get("pad_token")) or eos
        return cls(encoder, merges, max_length=max_length, bos=bos, eos=eos, pad=pad)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)

        if not pairs:
            return token + "</w>"

        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break

                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            new_word = tuple(new_word)
            word = new_word
            if len(word) == 1:
                break
            else:
                pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def clean(self, text):
        return whitespace_clean(basic_clean(text)).lower()

    def encode(self, text):
        """Ids of the text's BPE tokens, without bos/eos and without truncation."""
        bpe_tokens = []
        text = self.clean(text)
        for token in re.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[bpe_token] for bpe_token in self.bpe(token).split(" "))
        return bpe_tokens

    def __call__(self, text):
        """Exactly max_length ids: bos, the BPE ids truncated to max_length - 2, eos, then pad."""
        ids = [self.bos_id] + self.encode(text)[: self.max_length - 2] + [self.eos_id]
        return ids + [self.pad_id] * (self.max_length - len(ids))

    def decode(self, tokens):
        text = "".join([self.decoder[token] for token in tokens])
        text = bytearray([self.byte_decoder[c] for c in text]).decode("utf-8", errors="replace").replace("</w>", " ")
        return text
