"""This machine's matmul peak through torch: the denominator of training efficiency."""

from __future__ import annotations

import statistics
import time

import torch


def matmul_peak_gflops(
    threads: int, sizes=(1024, 2048), repeats: int = 7, device: str = "cpu", dtype=torch.float32
) -> float:
    torch.set_num_threads(threads)
    best = 0.0
    for n in sizes:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        a @ b  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        best = max(best, 2 * n**3 / statistics.median(times) / 1e9)
    return best


if __name__ == "__main__":
    print(f"{matmul_peak_gflops(torch.get_num_threads()):.1f} GFLOP/s")
