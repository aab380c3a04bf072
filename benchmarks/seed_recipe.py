"""The seed recipe: one run of the original notebook's settings on the same split and model.

Every message padded to 128 tokens, batch size 8, the Trainer's default learning rate (5e-5)
and epochs (3), evaluated on validation each epoch; the final model is scored on test.
"""

from __future__ import annotations

import tempfile

from transformers import Trainer, default_data_collator

from benchmarks.common import (
    EvalClock,
    config_for,
    cpu_training_args,
    parse_args,
    tokenized_splits,
    write_result,
)
from trainable.metrics import compute_metrics, evaluate_model
from trainable.model import load_model
from trainable.train_loop import WorkCallback


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    cfg = config_for(args.setting)
    tokenizer, splits = tokenized_splits(cfg, pad_to_max_length=True)
    clock, work = EvalClock(), WorkCallback()
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            model=load_model(cfg.model, cfg.data.labels, tokenizer),
            args=cpu_training_args(cfg, scratch, per_device_train_batch_size=8, save_strategy="no"),
            train_dataset=splits["train"],
            eval_dataset=splits["validation"],
            processing_class=tokenizer,
            data_collator=default_data_collator,
            compute_metrics=compute_metrics,
            callbacks=[clock, work],
        )
        trainer.train()
        final = [log for log in trainer.state.log_history if "time_train_s" in log][-1]
    test = evaluate_model(trainer.model, tokenizer, splits["test"], 64, "test")
    write_result(
        args.out,
        "seed",
        {
            "hyperparameters": {"learning_rate": 5e-5, "batch_size": 8, "epochs": 3},
            "best_val_f1": clock.evals[-1]["eval_f1"],
            "test_metrics": test,
            "evals": clock.evals,
            "work": {k: final[k] for k in final if k.startswith(("time_", "tokens_"))},
            "examples_trained": len(splits["train"]) * 3,
        },
    )


if __name__ == "__main__":
    main()
