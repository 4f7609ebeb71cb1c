#!/usr/bin/env python3
"""Reference logits and greedy tokens from Hugging Face transformers for a checkpoint folder
(e.g. `twinfer make-model --shape llama-3-8b`), for tests/cuda/test_cuda_executor.cpp's
"[large]" case. Runs on the GPU machine (torch + transformers, bf16, eager attention).

    python3 scripts/hf_reference.py MODEL_DIR OUT.json [--prompt-len 128] [--steps 128]

Writes {"prompt": ids, "last_prefill_logits": [vocab] fp32, "greedy_tokens": [steps]}.
"""
import argparse
import json

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=128)
    a = ap.parse_args()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16,
                                                 attn_implementation="eager").cuda().eval()
    vocab = model.config.vocab_size
    # Deterministic, spread-out ids (the same rule on every machine).
    prompt = [(i * 7919 + 13) % vocab for i in range(a.prompt_len)]
    with torch.no_grad():
        ids = torch.tensor([prompt], device="cuda")
        out = model(ids, use_cache=True)
        last = out.logits[0, -1].float()
        past = out.past_key_values
        tok = int(last.argmax())
        greedy = [tok]
        for _ in range(a.steps - 1):
            out = model(torch.tensor([[tok]], device="cuda"), past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = int(out.logits[0, -1].float().argmax())
            greedy.append(tok)
    with open(a.out, "w") as f:
        json.dump({"prompt": prompt, "last_prefill_logits": [round(float(v), 5) for v in last.cpu()],
                   "greedy_tokens": greedy}, f)
    print(f"wrote {a.out}: prompt {len(prompt)}, greedy {len(greedy)}")


if __name__ == "__main__":
    main()
