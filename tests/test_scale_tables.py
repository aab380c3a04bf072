"""The scale benchmark's pure parts on hand-made logs, folders and results (no search)."""

from __future__ import annotations

from benchmarks.scale import make_csv
from benchmarks.scale_tables import (
    bytes_per_report,
    record_bytes,
    requests_by_path,
    table,
    timed_lines,
)

ACCESS_LOG = """INFO:     Started server process [123]
INFO:     127.0.0.1:50011 - "GET /health HTTP/1.1" 200 OK
INFO:     127.0.0.1:50012 - "POST /api/2.0/mlflow/runs/log-metric HTTP/1.1" 200 OK
INFO:     127.0.0.1:50012 - "POST /api/2.0/mlflow/runs/log-metric HTTP/1.1" 200 OK
INFO:     127.0.0.1:50013 - "POST /api/2.0/mlflow/runs/log-batch HTTP/1.1" 200 OK
INFO:     127.0.0.1:50014 - "GET /api/2.0/mlflow/experiments/get-by-name?name=x HTTP/1.1" 200 OK
"""


def test_requests_are_counted_by_path():
    assert requests_by_path(ACCESS_LOG) == {
        "/health": 1,
        "runs/log-metric": 2,
        "runs/log-batch": 1,
        "experiments/get-by-name": 1,
    }


def test_records_are_sized_by_kind(tmp_path):
    trial = tmp_path / "out" / "ray_results" / "s" / "run_trial_1"
    trial.mkdir(parents=True)
    (trial / "result.json").write_text('{"a": 1}\n{"a": 22}\n')  # rows of 9 and 10 bytes
    (trial / "experiment_state-2026.json").write_text("x" * 30)
    (trial / "checkpoint_manager_snapshot.json").write_text("x" * 40)
    (trial / "checkpoint" / "checkpoint").mkdir(parents=True)
    (trial / "checkpoint" / "checkpoint" / "trainer_state.json").write_text("x" * 50)
    (trial / "checkpoint" / "checkpoint" / "model.safetensors").write_text("x" * 999)
    (tmp_path / "out" / "optuna.db").write_text("x" * 60)
    mlflow = tmp_path / "mlflow"
    (mlflow / "artifacts").mkdir(parents=True)
    (mlflow / "mlflow.db").write_text("x" * 70)
    (mlflow / "artifacts" / "model.safetensors").write_text("x" * 999)
    assert record_bytes(tmp_path / "out", mlflow) == {
        "tune": 19 + 30,
        "train snapshot": 40,
        "trainer state": 50,
        "optuna study": 60,
        "mlflow store": 70,
    }
    assert bytes_per_report(tmp_path / "out") == 8.5  # each row without its newline


def test_timed_lines_find_the_data_phase_and_the_summary():
    lines = [
        (1.5, "reading big.csv ..."),
        (40.0, "read and split 200,000 texts in 39 s; tokenizing them ..."),
        (70.2, "tokenized in 70 s from the start"),
        (900.0, "search finished: 2 trials in 899 s"),
    ]
    assert timed_lines(lines) == {"first_line_s": 1.5, "data_phase_s": 70.2, "summary_s": 900.0}
    assert timed_lines([]) == {"first_line_s": None, "data_phase_s": None, "summary_s": None}


def test_the_table_has_a_column_per_size():
    result = {
        "rows": 10000, "first_line_s": 1.2, "data_phase_s": 20.0, "before_first_trial_s": 30.0,
        "train_s": 100.0, "eval_s": 20.0, "overhead_median_s": 12.0, "after_last_trial_s": 40.0,
        "wall_s": 300.0, "driver_peak_mb": 1234.5, "bytes_per_report": 5000.0,
        "record_bytes": {"tune": 1000, "mlflow store": 2000},
        "mlflow_metric_requests_per_report": 186.0, "mlflow_requests": 500,
    }  # fmt: skip
    again = {**result, "again": True, "mlflow_metric_requests_per_report": None}
    lines = table([result, again])
    assert lines[0] == "| measure | 10,000 rows | 10,000 rows, the same file again |"
    assert "| training steps + evaluation, all trials | 120 s | 120 s |" in lines
    assert "| outside training and evaluation, share of the wall time | 60% | 60% |" in lines
    assert "| driver peak memory | 1,234 MB | 1,234 MB |" in lines
    assert "| records: train snapshot | 0 | 0 |" in lines
    assert "| MLflow metric requests per report | 186 | - |" in lines


def test_the_csv_has_the_rows_and_50_classes_round_robin(tmp_path):
    import pandas as pd

    frame = pd.read_csv(make_csv(tmp_path / "d.csv", 120))
    assert len(frame) == 120 and frame["label"].nunique() == 50
    assert list(frame["label"][:2]) == ["class_00", "class_01"]
    assert frame["text"].str.len().min() > 0
