"""The driver's data phase: the texts read, checked and split, the config resolved against
them (labels, positive class, metric), and the splits tokenized once, the search's slots
starting meanwhile (search/run.py).

Each step prints a line (`announce` the first): at a million texts the phase takes minutes.
"""

from __future__ import annotations

import time

from trainable.config import EMBEDDED, Config


def announce(cfg: Config) -> None:
    """The search's first line, printed before the seconds of imports that the data phase and
    Ray take."""
    source = "the embedded SMS Spam Collection" if cfg.data.source == EMBEDDED else cfg.data.source
    print(f"reading {source} ...", flush=True)


def load_task(cfg: Config):
    """`prepare_task` and `tokenize`, one after the other (the search starts its slots between
    them): the resolved config, the text splits, the tokenized ones, and the model's shape."""
    started = time.monotonic()
    cfg, texts, tokenizer, shape = prepare_task(cfg, started)
    return cfg, texts, tokenize(cfg, texts, tokenizer, started), shape


def prepare_task(cfg: Config, started: float):
    """The config resolved against the data (labels, positive class, metric), the text splits,
    their tokenizer, and the model's shape (what a trial's GPU memory depends on): every check
    of the data, before the search touches anything. `started`: the search's time.monotonic()
    at its start, which the progress lines count from."""
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
    print(f"read and split {rows:,} texts in {time.monotonic() - started:.0f} s", flush=True)
    return cfg, texts, tokenizer, shape


def tokenize(cfg: Config, texts, tokenizer, started: float):
    """The text splits tokenized, or read back from datasets' cache of an earlier search on
    the same file (trainable/data.py)."""
    from trainable import data

    rows = sum(len(split) for split in texts.values())
    print(f"tokenizing {rows:,} texts (at most {cfg.model.max_length} tokens each) ...", flush=True)
    tokenized = data.tokenize(texts, tokenizer, cfg.model.max_length)
    print(f"tokenized in {time.monotonic() - started:.0f} s from the start", flush=True)
    return tokenized
