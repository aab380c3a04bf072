"""`python -m search.predict` on a file of texts, this tree against another checkout, side by
side: the embedded MiniLM with a new two-class head, saved as a search exports it (its limit
128 tokens), classifying `--rows` texts of `--messages` SMS messages each (by default 1 to 12:
a few words to a few hundred), each tree `--repeats` times, alternating.

    python -m benchmarks.predict_pair --baseline /tmp/before

Writes benchmarks/results/<name>.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.hpo import running_from
from benchmarks.layout import WORK, pair_rows, save_results
from benchmarks.scale import make_csv
from benchmarks.trees import HERE, commit


def export_folder(folder: Path, max_length: int) -> Path:
    """The embedded model with a new head, laid out like `<output>/best_model`."""
    from search.export import save_tokenizer
    from trainable.config import ModelConfig
    from trainable.model import load_model, load_tokenizer

    cfg = ModelConfig(max_length=max_length)
    tokenizer = load_tokenizer(cfg)
    load_model(cfg, ["ham", "spam"], tokenizer, seed=0).save_pretrained(folder)
    save_tokenizer(tokenizer, max_length, folder)
    return folder


def timed_predict(tree: Path, model: Path, texts: Path, output: Path) -> float:
    """Seconds of `python -m search.predict` run on `tree`'s code, start to exit."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "search.predict", "--model", str(model), "--input", str(texts),
         "--output", str(output)],
        **running_from(tree), check=True, capture_output=True,
    )  # fmt: skip
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000)
    parser.add_argument("--messages", type=int, nargs=2, default=[1, 12])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=WORK / "predict")
    parser.add_argument("--name", default="predict_pair")
    args = parser.parse_args()
    out = args.out.resolve()
    texts = make_csv(out / "texts.csv", args.rows, messages=tuple(args.messages))
    model = export_folder(out / "best_model", args.max_length)
    trees = {commit(args.baseline.resolve()): args.baseline.resolve(), commit(HERE): HERE}
    seconds = {name: [] for name in trees}
    outputs = {}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            outputs[name] = out / f"preds_{len(outputs)}.csv"
            seconds[name].append(timed_predict(tree, model, texts, outputs[name]))
            print(name, f"{seconds[name][-1]:.1f} s", flush=True)
    same = len({path.read_text(encoding="utf-8") for path in outputs.values()}) == 1
    words = [len(line.split()) for line in texts.read_text(encoding="utf-8").splitlines()[1:]]
    result = {"rows": args.rows, "words_median": statistics.median(words), "seconds": seconds}
    table = [
        f"{args.rows:,} texts of {statistics.median(words):,.0f} words (median, at most "
        f"{max(words):,}), MiniLM at max_length {args.max_length}, {args.repeats} runs per tree, "
        f"alternating; the two trees' CSVs {'the same' if same else 'differ'}",
        "",
        *pair_rows("`search.predict`, start to exit", seconds),
    ]
    save_results(args.name, result, table)


if __name__ == "__main__":
    main()
