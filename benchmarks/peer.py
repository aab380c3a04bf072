"""The in-process peer: transformers' `Trainer.hyperparameter_search(backend="optuna")`.

What a user picks on one machine: the same split, model, space, trial budget, seed and
objective, with Optuna's defaults (TPE, median pruning on each epoch's objective). The model
it gives back is the best trial's last checkpoint, scored once on the test split.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer

from benchmarks.common import (
    EvalClock,
    config_for,
    cpu_training_args,
    metrics_for,
    parse_args,
    score_on_test,
    tokenized_splits,
    write_result,
)
from search.selection import metric_key
from trainable.config import Config
from trainable.hyperparameters import Dimension
from trainable.model import load_model


def hp_space(cfg: Config):
    """The search's space, each dimension named as the TrainingArguments field it sets."""

    def space(trial: optuna.Trial) -> dict:
        return {dim.sets: suggest(trial, dim) for dim in cfg.space.dimensions.values()}

    return space


def suggest(trial: optuna.Trial, dim: Dimension):
    """The dimension's value from Optuna, sampled as Ray Tune's sampler of the same name is
    (Ray's OptunaSearch converts it so)."""
    name, values = dim.sets, dim.values
    if dim.sampler == "choice":
        return trial.suggest_categorical(name, list(values))
    if dim.sampler == "randint":
        return trial.suggest_int(name, values[0], values[1] - 1)
    step = values[2] if dim.sampler == "quniform" else None
    return trial.suggest_float(name, *values[:2], log=dim.sampler == "loguniform", step=step)


def peer_trainer(cfg: Config, tokenizer, splits, scratch: Path, model_init, callbacks, **args):
    """The peer's Trainer: the CPU benchmark's settings, `args` overriding them (the GPU peer
    trains on the GPU); a checkpoint per epoch, the last one kept."""
    return Trainer(
        model_init=model_init,
        args=cpu_training_args(
            cfg,
            str(scratch),
            save_strategy="epoch",
            save_total_limit=1,
            save_only_model=True,
            per_device_eval_batch_size=cfg.train.eval_batch_size,
            **cfg.train_section_arguments(),  # as finetune-hpo's trials have them
            **args,
        ),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics_for(cfg),
        callbacks=callbacks,
    )


def peer_search(trainer: Trainer, cfg: Config):
    """`hyperparameter_search` with the search's space, budget, seed and metric (what
    finetune-hpo's Optuna sees); returns HF's BestRun."""
    metric = metric_key(cfg.search.metric)
    return trainer.hyperparameter_search(
        direction="maximize" if cfg.search.mode == "max" else "minimize",
        backend="optuna",
        hp_space=hp_space(cfg),
        n_trials=cfg.search.trials,
        compute_objective=lambda metrics: metrics[metric],
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
    )


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    cfg = config_for(args.setting)
    tokenizer, splits = tokenized_splits(cfg)
    scratch = args.out / "peer-trials"
    clock = EvalClock()
    trainer = peer_trainer(
        cfg,
        tokenizer,
        splits,
        scratch,
        model_init=lambda trial=None: load_model(cfg.model, cfg.data.labels, tokenizer),
        callbacks=[clock],
    )
    best = peer_search(trainer, cfg)
    (checkpoint,) = sorted(Path(scratch, f"run-{best.run_id}").glob("checkpoint-*"))
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    test = score_on_test(model, tokenizer, splits["test"], cfg, cfg.train.eval_batch_size)
    # HF numbers trials from 0 and scores a trial by its last evaluation.
    best_val = [e["eval_f1"] for e in clock.evals if e["trial"] == int(best.run_id) + 1][-1]
    shutil.rmtree(scratch, ignore_errors=True)
    write_result(
        args.out,
        "peer",
        {
            "hyperparameters": best.hyperparameters,
            "objective": best.objective,
            "best_val_f1": best_val,
            "test_metrics": test,
            "evals": clock.evals,
            "trials": cfg.search.trials,
        },
    )


if __name__ == "__main__":
    main()
