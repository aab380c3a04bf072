"""Model and tokenizer: embedded MiniLM, a hub id or a local folder; a tiny random one for tests."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DistilBertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    set_seed,
)

from trainable import embedded
from trainable.config import EMBEDDED, ModelConfig
from trainable.errors import ConfigError, first_line


def model_path(cfg: ModelConfig) -> str:
    return str(embedded.model_folder()) if cfg.name == EMBEDDED else cfg.name


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(
            model_path(cfg), trust_remote_code=cfg.trust_remote_code
        )
    except OSError as exc:
        raise ConfigError(
            f"could not load tokenizer for model.name {cfg.name!r} "
            f"({first_line(exc)}): use 'embedded', a local folder or a reachable hub id"
        ) from None


def check_remote_code(cfg: ModelConfig) -> None:
    """Refuses up front a model whose config needs the model's own Python code, unless the user
    trusts it by name: otherwise every trial would fail on it, and trusting it silently would
    run whatever the model repository ships."""
    if cfg.tiny:
        return
    try:
        AutoConfig.from_pretrained(model_path(cfg), trust_remote_code=cfg.trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise ConfigError(
                f"could not read the config of model.name {cfg.name!r} "
                f"({first_line(exc)}): point it at a Transformers model"
            ) from None
        raise ConfigError(
            f"model.name {cfg.name!r} ships custom code, which runs only with "
            "model.trust_remote_code: true: set it (--set model.trust_remote_code=true) only "
            "if you trust that code, or pick a model without it"
        ) from None


def load_model(
    cfg: ModelConfig, labels: list[str], tokenizer: PreTrainedTokenizerBase, seed: int | None = None
) -> PreTrainedModel:
    """A sequence classifier whose config maps ids to the label names.

    `seed` seeds the weights the checkpoint lacks (the new classification head; all of a tiny
    model). The Trainer seeds only when training starts, after the model exists, so without it
    every run, same seed or not, starts from a different head and trains to a different model.
    """
    if seed is not None:
        set_seed(seed)
    if cfg.tiny:
        return AutoModelForSequenceClassification.from_config(model_config(cfg, labels, tokenizer))
    return AutoModelForSequenceClassification.from_pretrained(
        model_path(cfg), trust_remote_code=cfg.trust_remote_code, **_label_maps(labels)
    )


def model_config(
    cfg: ModelConfig, labels: list[str], tokenizer: PreTrainedTokenizerBase
) -> PretrainedConfig:
    """The classifier's config: its shape, and the label names."""
    if cfg.tiny:
        return DistilBertConfig(
            vocab_size=len(tokenizer),
            dim=32,
            hidden_dim=64,
            n_layers=1,
            n_heads=2,
            max_position_embeddings=max(cfg.max_length, 64),
            pad_token_id=tokenizer.pad_token_id,
            **_label_maps(labels),
        )
    return AutoConfig.from_pretrained(
        model_path(cfg), trust_remote_code=cfg.trust_remote_code, **_label_maps(labels)
    )


def parameter_count(cfg: ModelConfig, config: PretrainedConfig) -> int:
    """The classifier's parameters, counted on a model built without memory (torch's meta
    device) so that nothing is downloaded or allocated."""
    import torch

    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(
            config, trust_remote_code=cfg.trust_remote_code
        )
    return sum(parameter.numel() for parameter in model.parameters())


def _label_maps(labels: list[str]) -> dict:
    id2label = dict(enumerate(labels))
    return {
        "num_labels": len(labels),
        "id2label": id2label,
        "label2id": {name: i for i, name in id2label.items()},
    }
