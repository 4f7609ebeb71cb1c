#!/usr/bin/env python3
"""PyTorch's bf16 matmul on the GEMM shapes `twinfer_bench gemm_large_t` times, for a
side-by-side reading in one run: y = x @ W.T with W [out, in] (the layout twinfer's Gemm uses).
Prints one line per shape: us per call (median of CUDA-event timings) and TFLOP/s."""
import sys
import torch

SHAPES = [("o_proj", 4096, 4096), ("qkv", 6144, 4096), ("down", 4096, 14336),
          ("gate_up", 28672, 4096), ("lm_head", 128256, 4096), ("square", 8192, 8192)]


def bench(T, out, inn, reps=50):
    g = torch.Generator(device="cuda").manual_seed(1)
    W = (torch.randn(out, inn, device="cuda", dtype=torch.bfloat16, generator=g) * 0.02)
    x = torch.randn(T, inn, device="cuda", dtype=torch.bfloat16, generator=g)
    for _ in range(5):
        y = x @ W.T
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        y = x @ W.T
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) * 1e3)
    times.sort()
    us = times[len(times) // 2]
    return us, 2.0 * T * inn * out / (us * 1e-6) / 1e12


def main():
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    for name, out, inn in SHAPES:
        Ts = [8192] if name == "square" else [4096] if name == "lm_head" else [512, 2048, 4096, 8192]
        for T in Ts:
            us, tf = bench(T, out, inn)
            print(f"torch {name:8s} {out}x{inn} T={T:5d}: {us:9.1f} us {tf:6.1f} TFLOP/s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
