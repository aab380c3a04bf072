"""`python -m search.predict`: classify texts with the model a search exported.

    python -m search.predict --model runs/tiny/best_model "WINNER!! Claim your prize" "lunch?"
    python -m search.predict --model runs/tiny/best_model --input sms.csv --output preds.csv

Inputs are read and checked before transformers is imported, so a wrong argument fails in
well under a second instead of after the model has loaded.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from typing import TextIO

from search.classify import Prediction, predict
from search.cli import exit_with
from search.layout import BEST_MODEL
from trainable.errors import ConfigError, DataError, UserError

DEFAULT_TEXT_COLUMN = "text"
PREVIEW_CHARS = 60


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m search.predict",
        description="Classify texts with an exported model (<output>/best_model of a search).",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    parser.add_argument("--model", required=True, help="the best_model folder of a finished search")
    parser.add_argument(
        "--input",
        help="texts from a file: .txt (one per line, blank lines skipped) "
        "or .csv (one per row, from --text-column)",
    )
    parser.add_argument(
        "--text-column",
        help=f"column of the .csv input that holds the texts (default: {DEFAULT_TEXT_COLUMN})",
    )
    parser.add_argument(
        "--output", help="write a CSV with columns text,label,score instead of printing"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="texts per forward pass (default: 32)"
    )
    return parser.parse_args(argv)


# --- reading -------------------------------------------------------------------------------


def check_model_dir(path: str) -> Path:
    """The model folder, or a ConfigError that says which folder to pass instead."""
    folder = Path(path)
    hint = f"pass the {BEST_MODEL} folder of a finished search (<output>/{BEST_MODEL})"
    if not folder.is_dir():
        raise ConfigError(f"model folder {folder} does not exist: {hint}")
    if not (folder / "config.json").is_file():
        if (folder / BEST_MODEL / "config.json").is_file():
            hint = f"did you mean {folder / BEST_MODEL}?"
        raise ConfigError(f"{folder} is not a model folder (no config.json): {hint}")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise ConfigError(f"model folder {folder} holds no weights (model.safetensors): {hint}")
    return folder


def read_texts(args: argparse.Namespace) -> list[str]:
    """The texts to classify, from the command line or from --input."""
    if args.texts and args.input:
        raise ConfigError("pass texts on the command line or --input FILE, not both")
    if args.input:
        return read_input_file(Path(args.input), args.text_column)
    if args.text_column:
        raise ConfigError("--text-column applies only to a .csv --input file")
    if not args.texts:
        raise ConfigError("nothing to classify: pass one or more texts or --input FILE")
    return list(args.texts)


def read_input_file(path: Path, text_column: str | None = None) -> list[str]:
    """Non-blank texts of a .txt (one per line) or .csv (one per row) file."""
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".csv"):
        raise ConfigError(f"--input {path} must be a .txt or .csv file")
    if suffix == ".txt" and text_column:
        raise ConfigError("--text-column applies only to a .csv --input file")
    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark before the header.
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if suffix == ".txt":
                texts = [line.strip() for line in handle]
            else:
                texts = _csv_column(handle, path, text_column or DEFAULT_TEXT_COLUMN)
    except UnicodeDecodeError:
        raise DataError(f"input file {path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"input file {path} is not valid CSV ({exc})") from None
    texts = [text for text in texts if text]
    if not texts:
        raise DataError(f"input file {path} holds no texts")
    return texts


def _csv_column(handle: TextIO, path: Path, column: str) -> list[str]:
    reader = csv.DictReader(handle)
    if reader.fieldnames is None:
        raise DataError(f"input file {path} is empty")
    if column not in reader.fieldnames:
        raise DataError(
            f"input file {path} has no column {column!r}; its columns are "
            f"{', '.join(repr(name) for name in reader.fieldnames)}: pass --text-column NAME"
        )
    return [(row[column] or "").strip() for row in reader]


# --- predicting ----------------------------------------------------------------------------


# --- writing -------------------------------------------------------------------------------


def format_lines(predictions: list[Prediction]) -> list[str]:
    """`label  score  text` with labels aligned and each text shortened to one line."""
    width = max(len(p.label) for p in predictions)
    lines = []
    for p in predictions:
        text = " ".join(p.text.split())
        if len(text) > PREVIEW_CHARS:
            text = text[: PREVIEW_CHARS - 3].rstrip() + "..."
        lines.append(f"{p.label:<{width}}  {p.score:.3f}  {text}")
    return lines


def check_output(destination: Path) -> None:
    """Fails before the model loads when the output could not be written."""
    if destination.is_dir():
        raise ConfigError(f"--output {destination} is a folder: pass a file name such as preds.csv")
    parent = next((p for p in destination.absolute().parents if p.exists()), None)
    if parent is not None and (not parent.is_dir() or not os.access(parent, os.W_OK)):
        raise ConfigError(f"--output {destination}: cannot write in {parent}")


def write_csv(predictions: list[Prediction], destination: Path) -> None:
    """Writes text,label,score beside the destination, then renames it into place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label", "score"])
            writer.writerows((p.text, p.label, f"{p.score:.6f}") for p in predictions)
        partial.replace(destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    try:
        if args.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, not {args.batch_size}")
        model_dir = check_model_dir(args.model)
        texts = read_texts(args)
        if args.output:
            check_output(Path(args.output))
        predictions = predict(model_dir, texts, args.batch_size)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        write_csv(predictions, Path(args.output))
        print(f"wrote {len(predictions)} predictions to {args.output}")
    else:
        print("\n".join(format_lines(predictions)))
    return 0


if __name__ == "__main__":
    exit_with(main())
