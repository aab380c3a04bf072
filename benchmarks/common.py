"""What the three contenders share: the settings, the split, the objective, the result record.

Each contender runs in its own process (`python -m benchmarks.<name> --setting S --out DIR`)
and writes `<DIR>/<name>.json`; `benchmarks.compare` runs them one after another.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoConfig, TrainerCallback, TrainingArguments

from trainable import data, task
from trainable.config import Config
from trainable.config_file import load_config
from trainable.metrics import ClassificationMetrics, predict_split
from trainable.model import load_tokenizer, model_path

# Same data, split, model, space, trial budget and seed for every contender. `target`: the
# validation F1 whose time to reach each contender's table reports. The reviews rank by F1 of
# `fresh` (58% of them), as the SMS settings rank by F1 of spam, so that every table, its
# time to target and its selection analysis read the same; test accuracy is in the tables too.
SETTINGS: dict[str, dict[str, Any]] = {
    "reduced": {"trials": 4, "target": 0.97, "overrides": {"data.max_rows": 1000}},
    "full": {"trials": 20, "target": 0.97, "overrides": {}},
    "reviews": {
        "trials": 8,
        "target": 0.80,
        "reviews": True,
        "overrides": {"data.max_rows": 3000, "data.positive_label": "fresh"},
    },
    # The reviews setting's budget, with three dimensions beside the built-ins (finetune-hpo
    # and the peer sample them; the seed recipe has none). Each range holds the HF Trainer's
    # default, which the defaults' trial takes.
    "reviews_space": {
        "trials": 8,
        "target": 0.80,
        "reviews": True,
        "overrides": {
            "data.max_rows": 3000,
            "data.positive_label": "fresh",
            "space.warmup_ratio": {"uniform": [0.0, 0.2]},
            "space.weight_decay": {"uniform": [0.0, 0.1]},
            "space.lr_scheduler_type": {"choice": ["linear", "cosine"]},
        },
    },
    "reviews_full": {
        "trials": 20,
        "target": 0.80,
        "reviews": True,
        "overrides": {"data.positive_label": "fresh"},
    },
}


def overrides_for(setting: str) -> dict[str, Any]:
    """The setting's `--set` overrides, its data file included."""
    spec = SETTINGS[setting]
    if not spec.get("reviews"):
        return dict(spec["overrides"])
    from benchmarks.reviews import reviews_csv

    return {"data.source": str(reviews_csv()), **spec["overrides"]}


def config_for(setting: str) -> Config:
    """The setting's config, resolved against the data as the search resolves it."""
    spec = SETTINGS[setting]
    cfg = load_config(None, {"search.trials": spec["trials"], **overrides_for(setting)})
    labels = data.prepare(cfg.data, cfg.seed)["train"].features[data.LABEL].names
    return task.resolve(cfg, labels)


def metrics_for(cfg: Config) -> ClassificationMetrics:
    return ClassificationMetrics(cfg.data.labels, cfg.data.positive_label)


def cli_args(setting: str, trials: int | None = None) -> list[str]:
    """The setting's search on the CLI, with `trials` in place of its trial budget if given."""
    sets = [
        arg
        for key, value in overrides_for(setting).items()
        for arg in ("--set", f"{key}={_yaml(value)}")
    ]
    return ["--trials", str(trials or SETTINGS[setting]["trials"]), *sets]


def _yaml(value: Any) -> str:
    """A value as `--set` reads it (YAML): a mapping or list in flow style."""
    import yaml

    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return str(value)


def flops_per_token(setting: str, average_length: float) -> float:
    """Training FLOPs per token: 6 x non-embedding weights, plus attention over the sequence."""
    config = AutoConfig.from_pretrained(model_path(config_for(setting).model))
    h, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    weights = layers * (4 * h * h + 2 * h * ff)
    return 6 * weights + 12 * layers * h * average_length


def tokenized_splits(cfg: Config, pad_to_max_length: bool = False):
    tokenizer = load_tokenizer(cfg.model)
    splits = data.prepare(cfg.data, cfg.seed)
    if not pad_to_max_length:
        return tokenizer, data.tokenize(splits, tokenizer, cfg.model.max_length)
    return tokenizer, splits.map(
        lambda batch: tokenizer(
            batch[data.TEXT], truncation=True, padding="max_length", max_length=cfg.model.max_length
        ),
        batched=True,
        remove_columns=[data.TEXT],
        keep_in_memory=True,
    )


def load_classifier(folder: Path | str):
    """A model from a Ray Train checkpoint folder (its HF subfolder) or an exported model folder."""
    from ray.train.huggingface.transformers import RayTrainReportCallback
    from transformers import AutoModelForSequenceClassification

    folder = Path(folder)
    if (folder / RayTrainReportCallback.CHECKPOINT_NAME).is_dir():
        folder = folder / RayTrainReportCallback.CHECKPOINT_NAME
    return AutoModelForSequenceClassification.from_pretrained(folder)


def score_on_test(model, tokenizer, test, cfg: Config, batch_size: int) -> dict[str, Any]:
    """Test loss and metrics (`test_*`), and `test_wrong`: the test rows the model gets wrong,
    so that models can be compared message by message, not only by score."""
    metrics, predicted = predict_split(model, tokenizer, test, batch_size, "test", metrics_for(cfg))
    wrong = np.flatnonzero(predicted != np.asarray(test[data.LABEL]))
    return {**metrics, "test_wrong": wrong.tolist()}


def cpu_training_args(cfg: Config, output_dir: str, **settings: Any) -> TrainingArguments:
    """What the in-process contenders share: evaluate and log every epoch, count the tokens
    the model runs on, seeded, on CPU, quiet; `settings` adds each one's own, or overrides."""
    shared = {
        "output_dir": output_dir,
        "eval_strategy": "epoch",
        "logging_strategy": "epoch",
        "include_num_input_tokens_seen": "all",
        "seed": cfg.seed,
        "use_cpu": True,
        "report_to": "none",
        "disable_tqdm": True,
    }
    return TrainingArguments(**{**shared, **settings})


class EvalClock(TrainerCallback):
    """Records (unix time, eval F1, trial) at every evaluation, for time-to-target."""

    def __init__(self):
        self.evals: list[dict[str, Any]] = []
        self.trial = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.trial += 1

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evals.append({"time": time.time(), "eval_f1": metrics["eval_f1"], "trial": self.trial})


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    """A contender's command line: --setting and --out."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="reduced")
    parser.add_argument(
        "--out",
        type=lambda p: Path(p).resolve(),
        required=True,
        help="folder for this contender's files",
    )
    return parser


def parse_args(description: str) -> argparse.Namespace:
    return benchmark_parser(description).parse_args()


def write_result(out: Path, name: str, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
