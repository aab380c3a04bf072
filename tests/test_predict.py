"""`python -m search.predict` through the real CLI (its own process once, its entry point in
this process otherwise), on a tiny random model saved like an export."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPAM = "WINNER!! As a valued network customer you have been selected to receive a £900 prize"
MESSAGES = [SPAM, "Are we still on for lunch at 1?", 'He said "ok, fine", then left']


def run_predict(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI's entry point in this process (no new interpreter, no second transformers import
    per case); test_texts_on_the_command_line_print_one_line_each runs the real process."""
    from search.predict import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def run_predict_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search.predict", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        # One thread: the model is tiny and other work may share the machine.
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A folder laid out like `<output>/best_model`: safetensors weights, tokenizer (its limit
    the length the model takes), labels."""
    from search.export import save_tokenizer
    from trainable.config import ModelConfig
    from trainable.model import load_model, load_tokenizer

    cfg = ModelConfig(tiny=True)
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, ["ham", "spam"], tokenizer)
    folder = tmp_path_factory.mktemp("export") / "best_model"
    model.save_pretrained(folder, safe_serialization=True)
    save_tokenizer(tokenizer, cfg.max_length, folder)
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["text", "label", "score"]
        return list(reader)


def assert_predictions(rows: list[dict[str, str]], texts: list[str]) -> None:
    assert [row["text"] for row in rows] == texts
    for row in rows:
        assert row["label"] in ("ham", "spam")
        assert 0.0 <= float(row["score"]) <= 1.0


def test_texts_on_the_command_line_print_one_line_each(model_dir):
    proc = run_predict_process("--model", str(model_dir), *MESSAGES)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(MESSAGES)
    for line, text in zip(lines, MESSAGES, strict=True):
        label, score, preview = line.split(maxsplit=2)
        assert label in ("ham", "spam")
        assert 0.0 <= float(score) <= 1.0
        assert text.startswith(preview.removesuffix("..."))
    assert "Traceback" not in proc.stderr


def test_txt_input_skips_blank_lines_and_writes_a_csv(model_dir, tmp_path):
    source = tmp_path / "messages.txt"
    source.write_text("\n".join([MESSAGES[0], "", "   ", *MESSAGES[1:], ""]) + "\n")
    output = tmp_path / "new" / "preds.csv"
    proc = run_predict("--model", str(model_dir), "--input", str(source), "--output", str(output))
    assert proc.returncode == 0, proc.stderr
    assert_predictions(read_rows(output), MESSAGES)
    assert sorted(p.name for p in output.parent.iterdir()) == ["preds.csv"]


def test_csv_input_reads_the_named_column_and_writes_a_csv(model_dir, tmp_path):
    source = tmp_path / "messages.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "message"])
        writer.writerows((i, text) for i, text in enumerate(MESSAGES))
    output = tmp_path / "preds.csv"
    output.write_text("an earlier run\n")
    proc = run_predict(
        "--model", str(model_dir), "--input", str(source), "--text-column", "message",
        "--output", str(output),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_predictions(read_rows(output), MESSAGES)
    assert not list(tmp_path.glob(".preds.csv*"))


def test_many_texts_come_back_in_their_order_each_scored_as_alone(model_dir):
    """Fed shortest first, long ones as their first words: each text's label and score are the
    pipeline's for that text alone, whole, and they come back in the order given."""
    from transformers import pipeline

    from search.classify import predict
    from trainable import data
    from trainable.config import DataConfig

    messages = data.arrow_column(data.prepare(DataConfig(max_rows=400), seed=0)["test"], "text")
    rng = random.Random(0)
    texts = [" ".join(rng.choices(messages.to_pylist(), k=rng.randint(1, 300))) for _ in range(40)]
    classify = pipeline("text-classification", model=str(model_dir))
    assert max(len(classify.tokenizer(text)["input_ids"]) for text in texts) > 1000
    predictions = predict(model_dir, texts, batch_size=4)
    assert [p.text for p in predictions] == texts
    alone = [classify([text], truncation=True)[0] for text in texts]
    # The random head's scores differ by as little as 6e-8 from text to text (a float's step
    # near 0.5): the order is checked to within that.
    assert len({a["score"] for a in alone}) > 30
    for prediction, expected in zip(predictions, alone, strict=True):
        assert prediction.label == expected["label"]
        assert prediction.score == pytest.approx(expected["score"], rel=0, abs=1e-7)


def test_a_long_run_prints_its_progress_on_stderr(model_dir, tmp_path, monkeypatch):
    from search import count_progress

    monkeypatch.setattr(count_progress, "PROGRESS_EVERY_S", 0.0)
    source = tmp_path / "messages.txt"
    source.write_text("\n".join(MESSAGES * 30) + "\n")
    output = tmp_path / "preds.csv"
    proc = run_predict(
        "--model", str(model_dir), "--input", str(source), "--output", str(output),
        "--batch-size", "2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    pattern = r"classified [\d,]+ of 90 texts \([\d,]+/s, about \d+ s left\)"
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert [int(line.split()[1]) for line in lines] == [16, 32, 48, 64, 80]  # 8 batches of 2
    assert len(read_rows(output)) == 90


def _error_cases(model: Path, tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Case name → (arguments after --model's value, words the one-line message must hold)."""
    (tmp / "empty.txt").write_text("\n  \n")
    (tmp / "empty.csv").write_text("")
    (tmp / "header_only.csv").write_text("text\n")
    (tmp / "other.csv").write_text("id,message\n1,hello\n")
    (tmp / "messages.json").write_text("[]")
    (tmp / "no_weights").mkdir()
    (tmp / "no_weights" / "config.json").write_bytes((model / "config.json").read_bytes())
    return {
        "no texts": ([str(model)], ["nothing to classify", "--input"]),
        "texts and input": ([str(model), "hi", "--input", str(tmp / "other.csv")], ["not both"]),
        "missing model": ([str(tmp / "nope"), "hi"], [str(tmp / "nope"), "best_model"]),
        "not a model": ([str(tmp), "hi"], [str(tmp), "config.json", "best_model"]),
        "no weights": ([str(tmp / "no_weights"), "hi"], ["no_weights", "no weights"]),
        "missing input": ([str(model), "--input", str(tmp / "gone.txt")], ["gone.txt"]),
        "empty txt": (
            [str(model), "--input", str(tmp / "empty.txt")],
            ["empty.txt", "no texts"],
        ),
        "empty csv": ([str(model), "--input", str(tmp / "empty.csv")], ["empty.csv", "empty"]),
        "header only": ([str(model), "--input", str(tmp / "header_only.csv")], ["no texts"]),
        "no text column": (
            [str(model), "--input", str(tmp / "other.csv")],
            ["'text'", "'id'", "'message'", "--text-column"],
        ),
        "wrong text column": (
            [str(model), "--input", str(tmp / "other.csv"), "--text-column", "body"],
            ["'body'", "'id'", "'message'"],
        ),
        "wrong suffix": ([str(model), "--input", str(tmp / "messages.json")], [".txt or .csv"]),
        "batch size": ([str(model), "hi", "--batch-size", "0"], ["--batch-size"]),
        "output is a folder": ([str(model), "hi", "--output", str(tmp)], ["is a folder"]),
    }


def test_user_errors_are_one_line_exit_2_and_write_nothing(model_dir, tmp_path):
    failures = []
    for name, (args, words) in _error_cases(model_dir, tmp_path).items():
        output = tmp_path / "out" / f"{name.replace(' ', '_')}.csv"
        if "--output" not in args:
            args = [*args, "--output", str(output)]
        proc = run_predict("--model", *args)
        lines = proc.stderr.strip().splitlines()
        ok = (
            proc.returncode == 2
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and all(word in lines[0] for word in words)
            and "Traceback" not in proc.stderr
            and not proc.stdout
        )
        if not ok:
            failures.append(f"{name}: rc={proc.returncode} stderr={proc.stderr!r}")
    assert not failures, "\n".join(failures)
    assert not (tmp_path / "out").exists()


def test_a_folder_with_unreadable_weights_is_a_user_error(model_dir, tmp_path):
    broken = tmp_path / "best_model"
    broken.mkdir()
    (broken / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    (broken / "model.safetensors").write_text("not safetensors")
    output = tmp_path / "preds.csv"
    proc = run_predict("--model", str(broken), "hi", "--output", str(output))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert str(broken) in proc.stderr and "Traceback" not in proc.stderr
    assert not output.exists()
