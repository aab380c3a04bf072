"""What an epoch of a trial reads from its data outside the training steps, transformers' way
(a Python pass over every example) against the trial's (one vectorised read), at the train and
validation sizes of a 200,000-row search (126,883 and 31,721 examples).

    python -m benchmarks.epoch_passes [--repeats 3]

Prints the median of --repeats runs of each pass, side by side; the examples are synthetic token ids
of 5 to 128 tokens, the pass costs depend on their count and lengths, not their content.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pyarrow as pa
from datasets import Dataset
from transformers.trainer_pt_utils import LengthGroupedSampler

from trainable.data import LABEL, arrow_column, token_lengths

SIZES = {"train": 126_883, "validation": 31_721}


def examples(rows: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 129, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    ids = pa.ListArray.from_arrays(
        offsets, pa.array(rng.integers(0, 30000, offsets[-1]), pa.int32())
    )
    mask = pa.ListArray.from_arrays(offsets, pa.array(np.ones(offsets[-1], np.int8)))
    table = pa.table({"input_ids": ids, "attention_mask": mask, LABEL: rng.integers(0, 50, rows)})
    return Dataset(table)


def median_s(work, ds: Dataset, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work(ds)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


PASSES = {
    "length grouping": (
        lambda ds: LengthGroupedSampler(32, dataset=ds),
        lambda ds: LengthGroupedSampler(32, lengths=token_lengths(ds)),
    ),
    "tokens per epoch": (
        lambda ds: sum(map(sum, ds["attention_mask"])),
        lambda ds: sum(token_lengths(ds)),
    ),
    "class counts (balanced loss)": (
        lambda ds: np.asarray(ds[LABEL]),
        lambda ds: arrow_column(ds, LABEL).to_numpy(),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    print("| pass | split | rows | per example, in Python | one vectorised read | ratio |")
    print("|---|---|---|---|---|---|")
    for split, rows in SIZES.items():
        ds = examples(rows)
        for name, (before, after) in PASSES.items():
            slow, fast = median_s(before, ds, repeats), median_s(after, ds, repeats)
            times = f"{slow:.2f} s | {fast:.3f} s | {slow / fast:.0f}x"
            print(f"| {name} | {split} | {rows:,} | {times} |")


if __name__ == "__main__":
    main()
