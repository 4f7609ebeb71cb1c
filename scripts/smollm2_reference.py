#!/usr/bin/env python3
"""Greedy reference ids for tests/fixtures/smollm2_greedy.json from Hugging Face transformers.

transformers loads the same Q4_1 GGUF (scripts/fetch_smollm2.sh) and dequantizes it to fp32, as
twinfer's loader does, so greedy ids should agree token for token until an fp32 near tie. The
prompts and lengths are read from the fixture itself (one source of truth for the C++ test);
this rewrites prompt_ids and greedy_ids with transformers' answers, sets "source" to
"transformers", and records per case how many leading ids the previous contents (twinfer's own
output) shared with transformers ("twinfer_prefix_match") and the number the test requires
("must_match": the first divergence, or all).

Needs torch, transformers (>= 4.41 for GGUF) and the `gguf` package; no network, CPU or GPU:
  python3 scripts/smollm2_reference.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import json
import os
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--fixture", default=os.path.join(here, "..", "tests", "fixtures", "smollm2_greedy.json"))
    ap.add_argument("--out", help="where to write (default: --fixture, in place)")
    ap.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "0") != "" else "cpu")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except TypeError:  # transformers 4.x spells it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    device = args.device if (args.device != "cuda" or torch.cuda.is_available()) else "cpu"
    # fp32 matmuls without TF32, so the GPU's sums stay close to the CPU reference's.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = model.to(device).eval()
    eos = 2  # <|im_end|>, tokenizer.ggml.eos_token_id
    assert tok.convert_ids_to_tokens(eos) == "<|im_end|>", tok.convert_ids_to_tokens(eos)

    with open(args.fixture) as f:
        fx = json.load(f)
    old_source = fx.get("source", "")
    for case in fx["cases"]:
        ids = tok(case["prompt"], add_special_tokens=True)["input_ids"]
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=case["max_tokens"],
                                 do_sample=False, temperature=None, top_p=None, top_k=None,
                                 eos_token_id=eos, pad_token_id=eos)
        gen = out[0, len(ids):].tolist()
        prev = case.get("greedy_ids", [])
        same = 0
        while same < min(len(gen), len(prev)) and gen[same] == prev[same]:
            same += 1
        if old_source.startswith("twinfer"):
            case["twinfer_prefix_match"] = same
            if case.get("prompt_ids") != ids:
                case["twinfer_prompt_ids_differed"] = case.get("prompt_ids")
        case["prompt_ids"] = ids
        case["greedy_ids"] = gen
        case["must_match"] = same if old_source.startswith("twinfer") and same < len(gen) else len(gen)
        case["text"] = tok.decode(gen)
        print(f"{same}/{len(gen)} ids shared with the previous fixture: {case['text']!r}", file=sys.stderr)
    fx["source"] = "transformers"
    fx["generator"] = (f"scripts/smollm2_reference.py: transformers {transformers.__version__}, "
                       f"torch {torch.__version__}, fp32 on {device}")
    with open(args.out or args.fixture, "w") as f:
        json.dump(fx, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
