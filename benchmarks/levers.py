"""Levers inside one training step, measured side by side on the same batches of real messages.

    python -m benchmarks.levers            # about four minutes on 2 cores

Each lever trains MiniLM for the same number of steps from the same start and reports the
median seconds per step and the messages per second; the table goes to results/levers.md.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time

import torch
from transformers import DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

from benchmarks.common import config_for, tokenized_splits
from benchmarks.layout import RESULTS
from trainable.model import load_model

STEPS, WARMUP, BATCH = 24, 3, 16


def batches(dataset, collator, order: list[int], count=STEPS + WARMUP, size=BATCH) -> list[dict]:
    rows = [dataset[i] for i in order[: count * size]]
    return [collator(rows[i : i + size]) for i in range(0, len(rows), size)]


def seconds_per_step(model, batches_: list[dict], threads: int) -> float:
    torch.set_num_threads(threads)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times = []
    for i, batch in enumerate(batches_):
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _one_of_two(args) -> float:
    """A spawned process: waits for its twin, then times its own training at 1 thread."""
    cfg, batches_, barrier = args
    tokenizer, _ = tokenized_splits(cfg)
    model = load_model(cfg.model, cfg.data.labels, tokenizer, seed=cfg.seed)
    barrier.wait()
    return seconds_per_step(model, batches_, threads=1)


def two_at_once(cfg, batches_: list[dict]) -> float:
    """Two trainings at once, 1 thread each, as two concurrent trials would run: the slower
    one's median seconds per step (each process makes one step in that time)."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            return max(pool.map(_one_of_two, [(cfg, batches_, barrier)] * 2))


def main() -> None:
    cfg = config_for("full")
    tokenizer, dynamic = tokenized_splits(cfg)
    _, padded = tokenized_splits(cfg, pad_to_max_length=True)
    train, padded_train = dynamic["train"], padded["train"]
    collator = DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(cfg.seed)
    shuffled = torch.randperm(len(train), generator=generator).tolist()
    grouped = list(LengthGroupedSampler(BATCH, dataset=train, generator=generator))
    cases = {
        "padded to 128, random order (seed recipe)": (padded_train, shuffled, 2),
        "padded per batch, random order": (train, shuffled, 2),
        "padded per batch, grouped by length (finetune-hpo)": (train, grouped, 2),
        "padded per batch, grouped by length, 1 thread": (train, grouped, 1),
    }
    rows = {}
    for name, (dataset, order, threads) in cases.items():
        model = load_model(cfg.model, cfg.data.labels, tokenizer, seed=cfg.seed)
        step = seconds_per_step(model, batches(dataset, collator, order), threads)
        rows[name] = {"seconds_per_step": step, "messages_per_s": BATCH / step}
        print(f"{name}: {step:.3f} s/step, {BATCH / step:.1f} messages/s", flush=True)
    step = two_at_once(cfg, batches(train, collator, grouped))
    name = "two at once, 1 thread each, grouped by length (both together)"
    rows[name] = {"seconds_per_step": step, "messages_per_s": 2 * BATCH / step}
    print(f"{name}: {step:.3f} s/step each, {2 * BATCH / step:.1f} messages/s", flush=True)
    base = rows["padded to 128, random order (seed recipe)"]["messages_per_s"]
    lines = [
        f"Batch {BATCH}, median of {STEPS} training steps (forward, backward, AdamW) each.",
        "",
        "| lever | s/step | messages/s | vs seed recipe |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {r['seconds_per_step']:.3f} | {r['messages_per_s']:.1f} | "
        f"{r['messages_per_s'] / base:.2f}x |"
        for name, r in rows.items()
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "levers.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "levers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
