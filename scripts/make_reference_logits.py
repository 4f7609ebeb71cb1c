#!/usr/bin/env python3
"""Tiny checkpoints and their Hugging Face reference outputs for twinfer's CPU forward tests.

    python scripts/make_reference_logits.py            # reference.json for each fixture
    python scripts/make_reference_logits.py --create   # also (re)create the checkpoints and GGUFs

Needs torch, transformers, safetensors and numpy (plus gguf with --create), e.g. in a venv:
    pip install torch transformers safetensors numpy gguf

Each tests/fixtures/tiny_<name>/ holds config.json and model.safetensors (bf16, random weights
from a fixed seed) and reference.json: the prompt, the fp32 prefill logits at every prompt
position (transformers, eager attention) and 8 greedy tokens. --create also writes GGUF copies the
way llama.cpp's convert_hf_to_gguf.py does (llama: Q/K rows permuted for its rope kernel), using
the gguf package's own writer and quantizers so the C++ reader is checked against an independent
writer.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
PROMPT = [1, 17, 200, 45, 99, 3, 128, 255, 0, 64, 7, 33]
GREEDY_STEPS = 8

BASE = {
    "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
    "torch_dtype": "bfloat16", "initializer_range": 0.1,
}
# Each < 200 KB in bf16.
FIXTURE_CONFIGS = {
    "tiny_llama": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama",
                       intermediate_size=96, rope_theta=10000.0, tie_word_embeddings=False,
                       attention_bias=False, rope_scaling=None),
    "tiny_qwen2": dict(BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                       intermediate_size=128, rope_theta=1000000.0, tie_word_embeddings=True,
                       use_sliding_window=False, sliding_window=None, rope_scaling=None),
    # original_max_position 32 puts head_dim 16's frequencies in all three llama3 bands.
    "tiny_llama3": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama",
                        intermediate_size=128, rope_theta=10000.0, tie_word_embeddings=True,
                        attention_bias=False,
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 32}),
}
SEEDS = {"tiny_llama": 11, "tiny_qwen2": 22, "tiny_llama3": 33}


def create_checkpoint(name, cfg):
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    d = os.path.join(FIXTURES, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    torch.manual_seed(SEEDS[name])
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.float32)
    g = torch.Generator().manual_seed(SEEDS[name] + 1000)
    sd = {}
    for k, v in model.state_dict().items():
        if cfg["tie_word_embeddings"] and k == "lm_head.weight":
            continue
        v = v.clone()
        # Non-trivial norms and biases, so a forward pass that skips them fails the test.
        if k.endswith("norm.weight"):
            v = 1.0 + 0.2 * torch.randn(v.shape, generator=g)
        elif k.endswith(".bias"):
            v = 0.1 * torch.randn(v.shape, generator=g)
        sd[k] = v.to(torch.bfloat16).contiguous()
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})


def reference(name):
    from transformers import AutoModelForCausalLM

    d = os.path.join(FIXTURES, name)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        ids = torch.tensor([PROMPT])
        logits = model(ids).logits[0].float().numpy()
        # An explicit mask: generate() would otherwise mask prompt tokens equal to pad_token_id.
        out = model.generate(ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=GREEDY_STEPS, do_sample=False, eos_token_id=None,
                             pad_token_id=model.config.eos_token_id, min_new_tokens=GREEDY_STEPS)
    greedy = out[0, len(PROMPT):].tolist()
    ref = {
        "generator": f"transformers {__import__('transformers').__version__}, "
                     f"torch {torch.__version__}, fp32, eager attention",
        "prompt": PROMPT,
        "prefill_logits": [[float(f"{x:.7g}") for x in row] for row in logits],
        "greedy_tokens": greedy,
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: greedy {greedy}")


# ---- GGUF copies (llama.cpp conventions) -------------------------------------------------------

def permute_rows(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: HF rotate-half order -> interleaved pairs."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def write_gguf(name, cfg, qtype, path):
    import gguf
    from safetensors.torch import load_file

    d = os.path.join(FIXTURES, name)
    sd = {k: v.float().numpy() for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    arch = cfg["model_type"]
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(int(qtype))
    tokens = [f"<0x{i:02X}>".encode() for i in range(cfg["vocab_size"])]
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1 if i > 2 else 3 for i in range(cfg["vocab_size"])])
    w.add_token_merges(["<0x41> <0x42>", "<0x43> <0x44>"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])

    def put(gname, arr, quantize):
        arr = np.ascontiguousarray(arr.astype(np.float32))
        if not quantize or qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(gname, arr)
            return
        if qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(gname, arr.astype(np.float16))
            return
        q = gguf.quants.quantize(arr, qtype)
        w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=qtype)

    put("token_embd.weight", sd["model.embed_tokens.weight"], True)
    for l in range(cfg["num_hidden_layers"]):
        for hf, gg in GGUF_NAMES.items():
            for kind in ("weight", "bias"):
                key = f"model.layers.{l}.{hf}.{kind}"
                if key not in sd:
                    continue
                t = sd[key]
                if arch == "llama" and hf == "self_attn.q_proj":
                    t = permute_rows(t, cfg["num_attention_heads"])
                if arch == "llama" and hf == "self_attn.k_proj":
                    t = permute_rows(t, cfg["num_key_value_heads"])
                # llama.cpp keeps 1-D tensors (norms, biases) in F32.
                put(f"blk.{l}.{gg}.{kind}", t, t.ndim == 2)
    put("output_norm.weight", sd["model.norm.weight"], False)
    if not cfg["tie_word_embeddings"]:
        put("output.weight", sd["lm_head.weight"], True)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        # convert_hf_to_gguf.py stores the per-pair divisors of the base frequencies.
        base = cfg["rope_theta"]
        dim = cfg["head_dim"]
        freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        factors = []
        for f in freqs:
            wavelen = 2 * np.pi / f
            if wavelen < old / hi:
                factors.append(1.0)
            elif wavelen > old / lo:
                factors.append(factor)
            else:
                smooth = (old / wavelen - lo) / (hi - lo)
                factors.append(1.0 / ((1 - smooth) / factor + smooth))
        put("rope_freqs.weight", np.array(factors, dtype=np.float32), False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def create_ggufs():
    import gguf
    T = gguf.GGMLQuantizationType
    plan = [("tiny_llama", T.BF16, "model-bf16.gguf"), ("tiny_llama", T.Q8_0, "model-q8_0.gguf"),
            ("tiny_qwen2", T.Q4_0, "model-q4_0.gguf"), ("tiny_qwen2", T.Q4_1, "model-q4_1.gguf"),
            ("tiny_llama3", T.F16, "model-f16.gguf")]
    for name, q, fname in plan:
        write_gguf(name, FIXTURE_CONFIGS[name], q, os.path.join(FIXTURES, name, fname))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--create", action="store_true", help="(re)create checkpoints and GGUFs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name, cfg in FIXTURE_CONFIGS.items():
        if args.create:
            create_checkpoint(name, cfg)
        reference(name)
    if args.create:
        create_ggufs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
