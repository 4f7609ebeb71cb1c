#!/usr/bin/env python3
"""Reference outputs from Hugging Face transformers for a checkpoint folder (e.g. `twinfer
make-model --shape llama-3-8b`), for tests/cuda/test_cuda_executor.cpp's "[large]" case. Runs on
the GPU machine (torch + transformers).

    python3 scripts/hf_reference.py MODEL_DIR OUT.json [--prompt-len 128] [--steps 128]

Writes: the prompt; transformers' bf16 greedy continuation (eager attention, KV cache); the fp32
model's logits at the last prompt position; how far transformers' own bf16 logits are from them
(relative L2), the yardstick for any bf16 engine; and, along the bf16 greedy sequence, the fp32
model's argmax and top-1 minus top-2 margin at each step (teacher forcing), so a test can tell a
real disagreement from a near-tie that bf16 rounding may flip.
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
    prompt = [(i * 7919 + 13) % vocab for i in range(a.prompt_len)]  # same rule everywhere
    with torch.no_grad():
        out = model(torch.tensor([prompt], device="cuda"), use_cache=True)
        bf16_last = out.logits[0, -1].float()
        past = out.past_key_values
        tok = int(bf16_last.argmax())
        greedy = [tok]
        for _ in range(a.steps - 1):
            out = model(torch.tensor([[tok]], device="cuda"), past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = int(out.logits[0, -1].float().argmax())
            greedy.append(tok)
        del past, out
        model = model.float()
        seq = torch.tensor([prompt + greedy[:-1]], device="cuda")
        logits = model(seq).logits[0].float()  # [prompt + steps - 1, vocab]
        last = logits[len(prompt) - 1]
        steps = logits[len(prompt) - 1:]
        top2 = steps.topk(2, dim=-1)
        margins = (top2.values[:, 0] - top2.values[:, 1]).tolist()
        fp32_argmax = top2.indices[:, 0].tolist()
        err = float((bf16_last - last).norm() / last.norm())
    with open(a.out, "w") as f:
        json.dump({"prompt": prompt, "greedy_tokens": greedy,
                   "last_prefill_logits": [round(float(v), 5) for v in last.cpu()],
                   "hf_bf16_rel_l2": err, "fp32_argmax": fp32_argmax,
                   "fp32_margins": [round(m, 5) for m in margins]}, f)
    print(f"wrote {a.out}: prompt {len(prompt)}, greedy {len(greedy)}, transformers bf16 vs fp32 "
          f"rel_l2 {err:.4f}")


if __name__ == "__main__":
    main()
