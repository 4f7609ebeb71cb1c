#!/usr/bin/env python3
"""Hugging Face transformers baselines for `twinfer bench`, measured on the same GPU in the same
run (scripts/gpu_bench.sh calls this). Random-weight checkpoint from `twinfer make-model`.

    python3 scripts/hf_baseline.py MODEL_DIR decode   # batch 1: 128-token prompt, 256 new tokens
    python3 scripts/hf_baseline.py MODEL_DIR static --batch 64 --input 1024 --output 256 --batches 2

Static batching: `--batches` batches of `--batch` requests, each prompt padded to --input and
generating exactly --output tokens (min_new_tokens = max_new_tokens), greedy, eager attention;
throughput = generated tokens / wall time (the steady-state rate; more batches repeat it).
Prints one JSON line.
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("mode", choices=["decode", "static"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--input", type=int, default=1024)
    ap.add_argument("--output", type=int, default=256)
    ap.add_argument("--batches", type=int, default=2)
    a = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16).cuda().eval()
    vocab = model.config.vocab_size
    if a.mode == "decode":
        a.batch, a.input, a.output, a.batches = 1, 128, 256, 1
    gen = dict(do_sample=False, max_new_tokens=a.output, min_new_tokens=a.output, pad_token_id=0)
    ids = torch.randint(3, vocab, (a.batch, a.input), device="cuda")
    mask = torch.ones_like(ids)
    with torch.no_grad():
        model.generate(input_ids=ids[:, :16], attention_mask=mask[:, :16], do_sample=False,
                       max_new_tokens=8, pad_token_id=0)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        total = 0
        for _ in range(a.batches):
            out = model.generate(input_ids=ids, attention_mask=mask, **gen)
            total += (out.shape[1] - a.input) * a.batch
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    print(json.dumps({"baseline": "hf-transformers-eager", "mode": a.mode, "batch": a.batch,
                      "input": a.input, "output": a.output, "batches": a.batches,
                      "seconds": round(dt, 3), "output_tok_per_s": round(total / dt, 1),
                      "gpu": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
