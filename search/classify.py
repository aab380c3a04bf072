"""The exported model on many texts: the pipeline `transformers` loads from the folder, fed
shortest first (a batch pads its texts to about their own length), a long text as its first
words where those are all the model reads (trainable/text_prefix.py), with its progress on
stderr."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from search.count_progress import CountProgress
from search.layout import BEST_MODEL
from trainable.errors import ConfigError, first_line

BATCHES_PER_STEP = 8  # batches the pipeline runs between two looks at the clock


@dataclass
class Prediction:
    text: str
    label: str
    score: float


def predict(model_dir: Path, texts: list[str], batch_size: int = 32) -> list[Prediction]:
    """The top label and its score for each text, in their order; long texts are truncated to
    the model's limit."""
    from safetensors import SafetensorError
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from trainable.text_prefix import shortened

    # stdout and stderr are for predictions and errors, not loading bars and advisories.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        classify = pipeline("text-classification", model=str(model_dir))
    except (OSError, ValueError, SafetensorError) as exc:
        raise ConfigError(
            f"could not load the model in {model_dir} ({first_line(exc)}): "
            f"pass the {BEST_MODEL} folder of a finished search"
        ) from None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    inputs = shortened(
        classify.tokenizer, [texts[i] for i in order], classify.tokenizer.model_max_length
    )
    progress = CountProgress(len(texts), "classified", sys.stderr)
    outputs: list[dict] = [{}] * len(texts)
    step = batch_size * BATCHES_PER_STEP
    for start in range(0, len(order), step):
        done = classify(inputs[start : start + step], batch_size=batch_size, truncation=True)
        for i, out in zip(order[start : start + step], done, strict=True):
            outputs[i] = out
        progress(len(done))
    return [
        Prediction(text, out["label"], float(out["score"]))
        for text, out in zip(texts, outputs, strict=True)
    ]
