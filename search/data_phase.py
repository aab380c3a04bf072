"""The driver's data phase: the texts read, checked, split and tokenized once, and the
config resolved against them (labels, positive class, metric).

Each step prints a line as it starts (`announce` the first): at a million texts the phase takes
minutes.
"""

from __future__ import annotations

import time

from search.count_progress import CountProgress
from trainable.config import EMBEDDED, Config


def announce(cfg: Config) -> None:
    """The search's first line, printed before the seconds of imports that the data phase and
    Ray take."""
    source = "the embedded SMS Spam Collection" if cfg.data.source == EMBEDDED else cfg.data.source
    print(f"reading {source} ...", flush=True)


def load_task(cfg: Config):
    """The config resolved against the data (labels, positive class, metric), the text splits,
    the tokenized ones, and the model's shape (what a trial's GPU memory depends on)."""
    started = time.monotonic()
    from search.gpu_share import ModelShape
    from trainable import data, task
    from trainable.model import check_remote_code, load_tokenizer, model_config, parameter_count

    tokenizer = load_tokenizer(cfg.model)
    check_remote_code(cfg.model)
    texts = data.prepare(cfg.data, cfg.seed)
    cfg = task.resolve(cfg, texts["train"].features[data.LABEL].names)
    config = model_config(cfg.model, cfg.data.labels, tokenizer)
    shape = ModelShape.of(config, parameter_count(cfg.model, config))
    rows = sum(len(split) for split in texts.values())
    print(
        f"read and split {rows:,} texts in {time.monotonic() - started:.0f} s; tokenizing "
        f"them (at most {cfg.model.max_length} tokens each) ...",
        flush=True,
    )
    progress = CountProgress(rows, "tokenized")
    tokenized = data.tokenize(texts, tokenizer, cfg.model.max_length, progress)
    print(f"tokenized in {time.monotonic() - started:.0f} s from the start", flush=True)
    return cfg, texts, tokenized, shape
