"""`python -m search.run`: the whole search, from config to exported model.

CLI (search/cli.py) → config → data (tokenized once) → Ray → Tuner (Optuna + ASHA, trials
trained on warm Ray Train workers, MLflow) → best checkpoint → refit (on a warm worker, started
while the last trials train when it can) → `<output>/best_model` → report → summary.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from search.cli import config_from_args, exit_with, parse_args
from search.data_phase import announce, load_task
from search.layout import BEST_MODEL
from search.output import check_output_free, claim_output, disk_usage, mark_finished, read_search
from search.summary import describe_task, print_summary
from trainable.config import Config
from trainable.errors import UserError


def quiet_libraries() -> None:
    """Keeps the driver's own output to the progress lines and the summary."""
    import logging
    import os
    import warnings

    import optuna
    import transformers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    # Tune's newer console output prints its experiment box and a TensorBoard hint even at
    # verbose=0; the older one is silent there.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def run_search(cfg: Config, overwrite: bool = False, resume: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    announce(cfg)
    import ray
    from datasets import DatasetDict

    from search.cluster import fit_to_cluster, share_gpus
    from search.connect import connect
    from search.selection import find_best
    from search.slots import warm_workers
    from search.tracking import check_tracking
    from search.tuner import build_tuner, ended_trials, restore_tuner
    from search.warm_refit import refit_on_slot
    from trainable.trial import TrialSetup

    if not cfg.verbose:
        quiet_libraries()
    # Every check comes before the output folder is touched: bad input leaves nothing behind.
    labels_given = cfg.data.labels is not None
    cfg, texts, splits, shape = load_task(cfg)
    # Of the texts, the driver keeps the one message it shows the exported model.
    sample = sample_message(texts)
    del texts
    check_tracking(cfg)
    if resume:
        search = read_search(cfg.output_dir)
        search_name, run_id = search["name"], search["mlflow_run_id"]
    else:
        check_output_free(cfg, overwrite)
    connect(cfg)
    cfg, share = share_gpus(cfg, shape)
    cfg = fit_to_cluster(cfg)
    if not resume:
        search_name, run_id = claim_output(cfg, overwrite)
    sizes = {name: len(split) for name, split in splits.items()}
    print(describe_task(cfg, sizes, labels_given), flush=True)
    res = cfg.resources
    gpu = f" + 1/{share.trials_per_gpu} GPU" if share else ""
    print(
        f"trials: {cfg.search.max_concurrent} at once, each {res.num_workers} worker(s) x "
        f"{res.cpus_per_worker} CPU{gpu}",
        flush=True,
    )
    if share:
        print(f"GPU sharing: {share.trials_per_gpu} trial(s) per GPU: {share.reason}", flush=True)
    setup = TrialSetup(
        config=cfg,
        # Tokenized once here; every trial reads the same object from the object store, and
        # the driver keeps the test split alone.
        splits_ref=ray.put(
            DatasetDict(train=splits.pop("train"), validation=splits.pop("validation"))
        ),
        checkpoint_storage=f"{cfg.experiment_path(search_name)}/checkpoints",
    )
    refit_examples = sizes["train"] + sizes["validation"]
    with warm_workers(cfg, setup, search_name) as trial_setup:
        if resume:
            tuner = restore_tuner(cfg, trial_setup, search_name)
        else:
            tuner = build_tuner(cfg, trial_setup, search_name, run_id)
        results = tuner.fit()
        ended = ended_trials(cfg, search_name)
        if ended < cfg.search.trials:
            raise SearchInterrupted(
                f"search interrupted with {ended} of {cfg.search.trials} trials ended: finish "
                f"it with `python -m search.run --resume {cfg.output_dir}`"
            )
        best = find_best(results, cfg)
        refit = refit_on_slot(trial_setup, best, refit_examples)
    if resume:
        close_abandoned(cfg, search_name)
    record = finish(
        cfg,
        search_name,
        run_id,
        results,
        best,
        refit,
        setup,
        splits["test"],
        refit_examples,
        sample,
    )
    record["wall_time_s"] = round(time.monotonic() - started, 1)
    record["disk_mb"] = round(disk_usage(cfg.output_dir) / 2**20, 1)
    mark_finished(cfg.output_dir, record)
    return {"config": cfg, "record": record}


def close_abandoned(cfg: Config, search_name: str) -> None:
    from search.optuna_search import fail_abandoned_trials
    from search.tracking import ABANDONED_TAG, end_abandoned_runs

    runs = end_abandoned_runs(cfg, search_name)
    fail_abandoned_trials(cfg.optuna_uri)
    if runs:
        print(
            f"{runs} trial(s) started just before the driver was killed were never saved by Tune "
            f"and ran again as new trials: their MLflow runs end KILLED, tagged {ABANDONED_TAG}",
            flush=True,
        )


def sample_message(texts) -> str:
    """A test message to show the exported model on: the first of the rarest class, which
    is the one a reader wants to see caught (spam, not ham)."""
    import numpy as np

    from trainable.data import LABEL, TEXT, arrow_column

    labels = arrow_column(texts["test"], LABEL).to_numpy()
    classes, counts = np.unique(labels, return_counts=True)
    rarest = classes[np.argmin(counts)]  # the first of the least frequent, as ids sort
    return texts["test"][int(np.argmax(labels == rarest))][TEXT]


def finish(
    cfg: Config,
    search_name: str,
    run_id: str,
    results,
    best,
    refit,
    setup,
    test,
    refit_examples: int,
    sample,
):
    """After the trials: the `best` one, refit on the `refit_examples` of train and
    validation (unless `refit` is done already), scored on the tokenized `test` split,
    exported, reported and logged."""
    from search.export import export_best, score_where_trials_ran, write_record
    from search.parent_run import close_search_run
    from search.payoff import plan_payoff
    from search.placement import sweep_left_behind
    from search.refit import refit_best
    from search.report import write_report

    sweep_left_behind()  # the slots have ended: what still holds CPUs was left behind
    failed = [_failure(r) for r in results if r.error]
    if best is None:
        report_dir = write_report(cfg, search_name, None)
        close_search_run(cfg, run_id, None, report_dir, None)
        raise SearchFailed(
            f"no trial finished an epoch; {len(failed)} failed: " + "; ".join(failed[:3])
        )
    if refit is None and cfg.search.refit:
        refit = refit_best(best, setup, refit_examples)
    payoff = plan_payoff(cfg, results, best.trial_id, setup.checkpoint_storage)
    scored = score_where_trials_ran(cfg, test, payoff.checkpoints(cfg, best, refit))
    test_labels = test["label"]
    model_dir = cfg.output_dir / BEST_MODEL
    record = export_best(best, cfg, test_labels, model_dir, refit, scored["export"])
    record.update(trials=len(results), failed_trials=failed, sample_message=sample)
    record.update(payoff.record(cfg, test_labels, scored, best))
    write_record(model_dir, record)
    report_dir = write_report(cfg, search_name, record)
    close_search_run(cfg, run_id, record, report_dir, model_dir)
    return record


def _failure(result) -> str:
    """`trial id: reason`, the reason being the last line of the trial's error: the exception
    the worker raised, not Ray's wrapping of it."""
    from ray.tune.result import TRIAL_ID

    from trainable.errors import last_line

    # Tune fills in the trial id even for a trial that errored before its first report.
    return f"{result.metrics[TRIAL_ID]}: {last_line(result.error)}"


class SearchFailed(Exception):
    """Every trial failed: nothing to export."""


class SearchInterrupted(Exception):
    """Stopped before every trial ended (Ctrl-C): the state is saved for --resume."""


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    try:
        cfg = config_from_args(args)
        done = read_search(cfg.output_dir).get("finished") if args.resume else None
        if done:
            print(
                f"search in {cfg.output_dir} already finished ({done['trials']} trials; "
                f"best model in {cfg.output_dir / BEST_MODEL}): nothing to do"
            )
            return 0
        outcome = run_search(cfg, overwrite=args.overwrite, resume=args.resume is not None)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SearchFailed as exc:
        print(f"search failed: {exc}", file=sys.stderr)
        return 1
    except SearchInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    print_summary(outcome["config"], outcome["record"])
    return 0


if __name__ == "__main__":
    exit_with(main())
