"""Reference token ids for GenService's C# ClipTokenizer, computed independently of the C# code.

Run (from the repository root; needs Debian's python3-regex):
    /usr/bin/python3 tests/GenService.Generation.Tests/TextToImage/Reference/make_clip_reference.py

It reads the real CLIP vocabulary from ../shared/fixtures/tokenizers/clip/ (never copied here) and writes, next to
this file:
  * tiny-clip/tokenizer/{vocab.json, merges.txt, tokenizer_config.json}: a tiny CLIP-format vocabulary (the 512
    byte-level base tokens, BPE merges learned here from a small corpus, <|startoftext|> and <|endoftext|>) with
    model_max_length 16 and pad token "!" (as Stable Diffusion 2.x's tokenizer has), bos/eos written as
    {"content": ...} objects;
  * tiny-clip-json/tokenizer/{tokenizer.json, tokenizer_config.json}: the same vocabulary as a Hugging Face
    fast-tokenizer file, laid out as transformers' CLIPConverter (convert_slow_tokenizer.py) writes it;
  * clip_reference.json: for each prompt, what openai's tokenizer (models/training/clip_bpe.py) gives with both
    vocabularies: "clean" (the cleaned text), "unpadded" (its ids) and "ids" (padded to max_length: bos,
    ids[:max_length-2], eos, pad...); and under "unicode", unicodedata's NFC and Python's str.lower over every code
    point they change, for the C# ports of those two steps (UnicodeNfc, ClipTokenizer.PythonLower).

The prompts avoid what ftfy.fix_text would change beyond NFC (curly quotes, ligatures, full-width forms, mojibake,
control characters) because ftfy is not installed here and clip_bpe.py then falls back to NFC ("ftfy" in the
fixture says which ran); the C# tokenizer does not do those repairs either.
"""
import collections
import json
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "training"))

import clip_bpe  # noqa: E402
from clip_bpe import ClipBpe, bytes_to_unicode  # noqa: E402

import regex  # noqa: E402

REAL = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures", "tokenizers", "clip"))
TINY = os.path.join(HERE, "tiny-clip", "tokenizer")
TINY_JSON = os.path.join(HERE, "tiny-clip-json", "tokenizer")
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
TINY_MERGES = 220

LONG = ("a highly detailed matte painting of a castle on a cliff above a stormy sea at dusk, dramatic lighting, "
        "volumetric clouds, crashing waves, seagulls, lighthouse in the distance, by greg rutkowski and "
        "thomas kinkade, trending on artstation, octane render, 8k, ultra realistic, cinematic composition, "
        "golden hour, rim light, depth of field, bokeh, sharp focus, intricate, elegant, concept art, "
        "award winning photograph, masterpiece, best quality")

PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "A PHOTO Of An Astronaut RIDING a Horse",
    "Hello, world!!! ... (yes?) [no] {maybe} #tag @user $5.00 50% a-b_c ~/~ a/b",
    "don't stop, it's mine; we're here, they've gone, I'm in, you'll see, he'd go",
    "DON'T IT'S THEY'VE rock'n'roll o'clock 'tis ''s",
    "café naïve über straße Ærøskøbing déjà vu",
    "cafe\u0301 nai\u0308ve u\u0308ber",
    "ΟΔΟΣ ΣΟΦΙΑ ΣΑΣ İstanbul ΟΔΟΣ. Σ ΑΣ'Α ΑΣ\u0301",
    "猫が好き 一只可爱的猫 고양이",
    "a cat 🐱🚀 and a family 👩\u200d👩\u200d👧 ❤️",
    "in 2024, 3.14159 and ١٢٣ ½ Ⅻ",
    "&amp; &lt;b&gt; &amp;amp; &quot;hi&quot; it&#39;s &#x41;BC caf&eacute; x&nbsp;y",
    "  a\tcat\n\n on   the\r\nmat   \u3000 ",
    "<|startoftext|>a cat<|endoftext|> <|ENDOFTEXT|>dog <|startoftext|x",
    "",
    "   \t\n ",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "𝓗𝓮𝓵𝓵𝓸 a𝓗b 𐐀𐐁 𠀀x",
    "photo-realistic, 8k, ultra-detailed, trending on artstation, unreal engine 5",
    LONG,
    LONG + " " + LONG,
    "!!!!! ????? ,,,,, ....",
    "it'\u017f <|\u017ftartoftext|> x'\u017f",
    "a",
    "A",
    "!",
]

CORPUS = " ".join(PROMPTS[:5] + [LONG] + [
    "the quick brown fox jumps over the lazy dog",
    "a painting of a cat sitting on a chair in the style of van gogh",
    "portrait of a woman with red hair, oil on canvas",
    "a dog and a cat playing in the garden on a sunny day",
    "the city at night with neon lights and rain on the streets",
])


def train_tiny_merges(corpus, count):
    """Plain BPE training over the corpus's CLIP pre-tokens (byte-mapped, "</w>" on the last symbol)."""
    enc = bytes_to_unicode()
    pat = regex.compile(clip_bpe.PATTERN, regex.IGNORECASE)
    words = collections.Counter()
    for token in regex.findall(pat, clip_bpe.whitespace_clean(clip_bpe.basic_clean(corpus)).lower()):
        if token in (BOS, EOS):
            continue
        mapped = "".join(enc[b] for b in token.encode("utf-8"))
        words[tuple(mapped[:-1]) + (mapped[-1] + "</w>",)] += 1
    base = list(enc.values())
    known = set(base) | {v + "</w>" for v in base}
    merges = []
    while len(merges) < count:
        pairs = collections.Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += n
        candidates = sorted(((-n, p) for p, n in pairs.items() if "".join(p) not in known))
        if not candidates:
            break
        best = candidates[0][1]
        merges.append(best)
        known.add("".join(best))
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def write_json(path, value, indent=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(value, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def make_tiny():
    """openai's vocabulary layout: bytes, bytes + "</w>", one token per merge, then the two specials."""
    merges = train_tiny_merges(CORPUS, TINY_MERGES)
    base = list(bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m) for m in merges] + [BOS, EOS]
    encoder = {tok: i for i, tok in enumerate(vocab)}
    assert len(encoder) == len(vocab), "duplicate token in the tiny vocabulary"
    config = {
        "model_max_length": 16,
        "do_lower_case": True,
        "pad_token": "!",
        "bos_token": {"__type": "AddedToken", "content": BOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "eos_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "unk_token": EOS,
        "tokenizer_class": "CLIPTokenizer",
    }
    write_json(os.path.join(TINY, "vocab.json"), encoder)
    with open(os.path.join(TINY, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    write_json(os.path.join(TINY, "tokenizer_config.json"), config, indent=2)

    # The fast-tokenizer form, as transformers' CLIPConverter builds it (tokenizers' serialisation).
    added = [{"id": encoder[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": True, "special": True} for t in (BOS, EOS)]
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""},
             "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        "post_processor": {"type": "RobertaProcessing", "sep": [EOS, encoder[EOS]], "cls": [BOS, encoder[BOS]],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": EOS, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": encoder, "merges": [[a, b] for a, b in merges]},
    }
    write_json(os.path.join(TINY_JSON, "tokenizer.json"), tokenizer_json)
    write_json(os.path.join(TINY_JSON, "tokenizer_config.json"), config, indent=2)
    return len(encoder), len(merges)


def cases(tok):
    out = []
    for text in PROMPTS:
        out.append({"text": text, "clean": tok.clean(text), "unpadded": tok.encode(text), "ids": tok(text)})
    return out


def unicode_cases():
    """NFC and Python's lower-casing over every code point they change (Unicode of this Python), for the C# ports."""
    assigned = [chr(cp) for cp in range(0x110000)
                if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) not in ("Cn", "Co", "Cs")]
    decomposable = [c for c in assigned if unicodedata.decomposition(c) and not unicodedata.decomposition(c).startswith("<")]
    hangul = [chr(cp) for cp in (0xAC00, 0xAC01, 0xD7A3, 0xB098, 0xB0A0)]
    tricky = [
        "a\u0301\u0328",        # out of canonical order: reordered, then composed
        "a\u0328\u0301",
        "\u0301a",               # a leading combining mark composes with nothing
        "e\u0301\u0301",         # the second acute is not blocked? it is (same class): stays
        "\u1100\u1161\u11a8 \u1100\u1161 \uac00\u11a8",  # conjoining jamo compose to syllables
        "\u0344 \u0f73 \u2126 \u212b \u1e9b\u0323",      # singletons and exclusions
        "\U0001d15e \U000110ab",  # exclusions outside the BMP
        "ḍ\u0307 q\u0307\u0323",
    ]
    nfc_inputs = [
        " ".join(unicodedata.normalize("NFD", c) for c in decomposable + hangul),
        " ".join(decomposable),
    ] + tricky
    cased = [c for c in assigned if c.lower() != c or c.upper() != c]
    lower_inputs = [
        " ".join(cased),
        "".join(cased[:400]),
        "ΟΔΟΣ ΣΟΦΙΑ ΑΣ. Σ ΑΣ'Α ΑΣ\u0301Α ΑΣ\u0301 ᾼΣ ΑΣ1 İİ ǅǄǆ ẞ",
    ]
    return {
        "version": unicodedata.unidata_version,
        "nfc": [{"text": t, "nfc": unicodedata.normalize("NFC", t)} for t in nfc_inputs],
        "lower": [{"text": t, "lower": t.lower()} for t in lower_inputs],
    }


def main():
    tiny_size, tiny_merges = make_tiny()
    real = ClipBpe.from_folder(REAL)
    tiny = ClipBpe.from_folder(TINY)
    fixture = {
        "generator": "make_clip_reference.py (openai CLIP simple_tokenizer via models/training/clip_bpe.py)",
        "ftfy": clip_bpe.FTFY_AVAILABLE,
        "real": {"vocab_size": len(real.encoder), "max_length": real.max_length, "bos": real.bos_id,
                 "eos": real.eos_id, "pad": real.pad_id, "cases": cases(real)},
        "tiny": {"vocab_size": tiny_size, "max_length": tiny.max_length, "bos": tiny.bos_id,
                 "eos": tiny.eos_id, "pad": tiny.pad_id, "cases": cases(tiny)},
        "unicode": unicode_cases(),
    }
    write_json(os.path.join(HERE, "clip_reference.json"), fixture, indent=1)
    print(f"real: {len(real.encoder)} tokens; tiny: {tiny_size} tokens, {tiny_merges} merges; "
          f"{len(PROMPTS)} prompts; ftfy={clip_bpe.FTFY_AVAILABLE}")


if __name__ == "__main__":
    main()
