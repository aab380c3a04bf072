"""The seed recipe: one run of the original notebook's settings on the same split and model.

Every message padded to 128 tokens, batch size 8, the Trainer's default learning rate (5e-5)
and epochs (3), evaluated on validation each epoch; the final model is scored on test.
With `--all-training-data` it trains on train + validation, as the notebook (which has no
validation split) and finetune-hpo's refit do, and evaluates only on test, once.
"""

from __future__ import annotations

import tempfile

from datasets import concatenate_datasets
from transformers import Trainer, default_data_collator

from benchmarks.common import (
    EvalClock,
    benchmark_parser,
    config_for,
    cpu_training_args,
    metrics_for,
    score_on_test,
    tokenized_splits,
    write_result,
)
from trainable.callbacks import WorkCallback
from trainable.model import load_model


def main() -> None:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--all-training-data", action="store_true", help="train on train + validation"
    )
    args = parser.parse_args()
    cfg = config_for(args.setting)
    tokenizer, splits = tokenized_splits(cfg, pad_to_max_length=True)
    train, validation = splits["train"], splits["validation"]
    if args.all_training_data:
        train, validation = concatenate_datasets([train, validation]), None
    clock, work = EvalClock(), WorkCallback()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            model=load_model(cfg.model, cfg.data.labels, tokenizer, seed=cfg.seed),
            args=cpu_training_args(
                cfg,
                scratch,
                per_device_train_batch_size=8,
                save_strategy="no",
                eval_strategy="epoch" if validation else "no",
            ),
            train_dataset=train,
            eval_dataset=validation,
            processing_class=tokenizer,
            data_collator=default_data_collator,
            compute_metrics=metrics_for(cfg),
            callbacks=[clock, work],
        )
        trainer.train()
    test = score_on_test(trainer.model, tokenizer, splits["test"], cfg, 64)
    result = {
        "hyperparameters": {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3},
        "best_val_f1": clock.evals[-1]["eval_f1"] if validation else None,
        "test_metrics": test,
        "evals": clock.evals,
        "examples_trained": len(train) * 3,
    }
    if validation:  # WorkCallback reports with each evaluation
        final = [log for log in trainer.state.log_history if "time_train_s" in log][-1]
        result["work"] = {k: final[k] for k in final if k.startswith(("time_", "tokens_"))}
    write_result(args.out, "seed_all" if args.all_training_data else "seed", result)


if __name__ == "__main__":
    main()
