"""Levers inside one training step on a CUDA GPU: precision, fused AdamW, torch.compile, padding.

    python -m benchmarks.gpu.levers        # on a machine with a CUDA GPU; about two minutes

The GPU counterpart of benchmarks.levers: in every case MiniLM trains the same batches of real
messages (grouped by length and padded per batch, as a finetune-hpo trial does, unless the case
pads to 128) from the same start. Each case reports the median milliseconds per step, messages
per second and the model's TFLOP/s against the card's measured bf16 matmul peak; batches are
on the GPU before the clock starts. The table goes to results/gpu_levers.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

import torch
from transformers import DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

from benchmarks.common import config_for, flops_per_token, tokenized_splits
from benchmarks.layout import RESULTS
from benchmarks.levers import batches
from benchmarks.matmul_peak import matmul_peak_gflops
from trainable.model import load_model

BATCH, STEPS, WARMUP = 32, 60, 10
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Case:
    precision: str = "fp32"  # fp32, tf32 (fp32 weights, TF32 matmuls), bf16 or fp16 autocast
    fused: bool = False  # fused AdamW kernel instead of the for-each one
    compiled: bool = False
    padded: bool = False  # every message padded to 128 tokens


CASES = {
    "fp32, for-each AdamW": Case(),
    "TF32 matmuls": Case("tf32"),
    "bf16 autocast": Case("bf16"),
    "fp16 autocast, grad scaler": Case("fp16"),
    "bf16, fused AdamW (finetune-hpo, precision: bf16)": Case("bf16", fused=True),
    "bf16, fused AdamW, padded to 128": Case("bf16", fused=True, padded=True),
    "bf16, fused AdamW, torch.compile": Case("bf16", fused=True, compiled=True),
}


def step_times(model, batches_: list[dict], case: Case) -> list[float]:
    """Seconds of each training step (forward, backward, optimizer), in order."""
    device = next(model.parameters()).device.type
    torch.backends.cuda.matmul.allow_tf32 = case.precision == "tf32"
    dtype = AUTOCAST.get(case.precision)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-5, fused=case.fused, foreach=not case.fused
    )
    scaler = torch.amp.GradScaler(device, enabled=case.precision == "fp16")
    times = []
    for batch in batches_:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def markdown(rows: dict[str, dict], peak_tflops: float, device: str) -> str:
    base = rows["fp32, for-each AdamW"]["messages_per_s"]
    lines = [
        f"{device}, batch {BATCH}, median of {STEPS} training steps after {WARMUP} warm-up "
        f"steps; bf16 matmul peak measured {peak_tflops:.0f} TFLOP/s.",
        "",
        "| case | ms/step | messages/s | vs fp32 | model TFLOP/s | of bf16 peak | warm-up s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {1000 * r['seconds_per_step']:.1f} | {r['messages_per_s']:.0f} | "
        f"{r['messages_per_s'] / base:.2f}x | {r['tflops']:.1f} | "
        f"{r['tflops'] / peak_tflops:.1%} | {r['warmup_s']:.1f} |"
        for name, r in rows.items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu.levers: torch sees no CUDA GPU; run it on a GPU machine")
    cfg = config_for("full")
    tokenizer, dynamic = tokenized_splits(cfg)
    _, padded = tokenized_splits(cfg, pad_to_max_length=True)
    collator = DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(cfg.seed)
    order = list(LengthGroupedSampler(BATCH, dataset=dynamic["train"], generator=generator))
    threads = torch.get_num_threads()  # the peak sets them; the CPU side keeps what it had
    peak = matmul_peak_gflops(threads, (4096, 8192), device="cuda", dtype=torch.bfloat16) / 1000
    rows = {}
    for name, case in CASES.items():
        train = (padded if case.padded else dynamic)["train"]
        on_gpu = [
            {key: value.cuda() for key, value in batch.items()}
            for batch in batches(train, collator, order, WARMUP + STEPS, BATCH)
        ]
        model = load_model(cfg.model, cfg.data.labels, tokenizer, seed=cfg.seed).cuda()
        if case.compiled:
            model = torch.compile(model, dynamic=True)
        times = step_times(model, on_gpu, case)
        step = statistics.median(times[WARMUP:])
        tokens = statistics.mean(batch["input_ids"].numel() for batch in on_gpu[WARMUP:])
        rows[name] = {
            "seconds_per_step": step,
            "messages_per_s": BATCH / step,
            "tflops": flops_per_token("full", tokens / BATCH) * tokens / step / 1e12,
            "warmup_s": sum(times[:WARMUP]),
        }
        print(f"{name}: {json.dumps(rows[name])}", flush=True)
    table = markdown(rows, peak, torch.cuda.get_device_name())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_levers.json").write_text(json.dumps({"peak_tflops": peak, **rows}, indent=2))
    (RESULTS / "gpu_levers.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
