"""The GPU benchmark of issue 16: packed search, in-process peer, one trial at a time.

finetune-hpo's search with several trials on one GPU, the in-process peer, and the search one
trial at a time, on the same data, model, space, seed, precision and trial count, in one run of
at most `--budget-s` seconds.

    python -m benchmarks.gpu                           # one CUDA GPU: at most 8 minutes
    python -m benchmarks.gpu --logs $OUT/logs          # the logs and raw records, elsewhere

Each contender runs in its own process group, with its share of the budget still left when it
starts (benchmarks/gpu/contenders.py); one that overruns is stopped, and the trials it ended
still count. After each one, results/gpu_search.json and .md are rewritten, so a later failure
leaves what was measured. What is measured, and the targets: tables.py and targets.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.gpu.contenders import CONTENDERS, command, facts_for, settings, time_share
from benchmarks.gpu.monitor import Monitor, gpu_name, open_probe, wait_for_release
from benchmarks.gpu.process import Running, say
from benchmarks.gpu.tables import markdown, summarize
from benchmarks.layout import RESULTS
from trainable.errors import first_line

NAME = "gpu_search"  # results/gpu_search.json and .md
RESERVE_S = 25  # of the budget: stopping the last contender, reading it, writing the tables
SHORTEST_S = 30  # a contender left less than this is not started


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.logs = args.logs or args.work / "logs"
    if args.redraw:
        raw = json.loads(args.redraw.read_text())
        records, samples = raw.pop("records"), raw.pop("samples")
        print(write(raw, records, samples, args.logs), flush=True)
        return 0
    if unknown := [name for name in args.only if name not in CONTENDERS]:
        raise SystemExit(f"--only: unknown contender(s) {unknown}; use {','.join(CONTENDERS)}")
    deadline = time.time() + args.budget_s - RESERVE_S
    probe, busy_source = open_probe()
    try:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch.cuda.is_available() is False")
        gpu = gpu_name(probe)
    except Exception as exc:
        print(f"benchmarks.gpu.search: no CUDA GPU ({first_line(exc)}): run it on a GPU machine")
        return 2
    shared = settings(args.trials, args.precision, args.seed)
    facts = facts_for(args, gpu, busy_source, probe is not None, shared)
    say(f"{gpu}; GPU busy read through {busy_source if probe else 'nothing: ' + busy_source}")
    # A stop from outside (the machine's time limit) still stops the contenders and writes.
    signal.signal(signal.SIGTERM, _interrupt)
    baseline = probe.read()[1] if probe else None
    monitor = Monitor(probe)
    records = earlier_records(args, facts, monitor)
    monitor.start()
    unread: list[tuple[str, dict]] = []  # contenders that ended, their records not yet read
    running, broke_off = None, False
    try:
        for i, name in enumerate(args.only):
            if unread:  # the next contender gets the GPU to itself
                held = wait_for_release(probe, baseline)
                if held:
                    say(f"warning: {held:.1f} GiB of GPU memory still held after {unread[-1][0]}")
                    facts["notes"].append(f"After {unread[-1][0]}, {held:.1f} GiB stayed held.")
            label = CONTENDERS[name].label
            weights = [CONTENDERS[n].weight for n in args.only[i:]]
            share = time_share(deadline - time.time(), weights)
            if share < SHORTEST_S:
                say(f"{label}: not started, {share:.0f} s of the budget left for it")
                continue
            shutil.rmtree(args.work / name, ignore_errors=True)  # no earlier run's records
            say(f"{label}: starting, at most {share:.0f} s: {facts['commands'][name]}")
            log = args.logs / f"{name}.log"
            running = Running(name, label, command(name, shared, args.work / name), log)
            while unread:  # read while this one runs, on the CPU: the GPU is its alone
                done, outcome = unread.pop(0)
                records[done] = collect(done, outcome, args)
                if "estimate" not in facts:
                    facts["estimate"] = _estimate(shared)
                _write_quietly(facts, records, monitor.samples, args.logs)
            unread.append((name, running.finish(share)))
            running = None
    except (KeyboardInterrupt, Exception) as exc:
        broke_off = True
        if isinstance(exc, KeyboardInterrupt):
            say("interrupted: stopping the running contender, writing what was measured")
        else:  # a bug here must not lose what the contenders measured
            say(f"error: {type(exc).__name__}: {first_line(exc)}; writing what was measured")
            traceback.print_exc()
            facts["notes"].append(f"The benchmark broke off: {type(exc).__name__}: {exc}")
        if running:
            now = time.time()
            running.stop()
            unread.append((running.name, running.outcome(now, now)))
            running = None
    finally:
        if running:
            running.stop()
        for name, outcome in unread:
            records[name] = collect(name, outcome, args)
        monitor.stop()
    if "estimate" not in facts:
        facts["estimate"] = _estimate(shared)
    table = _write_quietly(facts, records, monitor.samples, args.logs)
    print(table or "no table: see the error above", flush=True)
    say(f"wrote {RESULTS / NAME}.json and .md; logs and raw.json in {args.logs}")
    failed = [r for r in records.values() if r["returncode"] not in (0, None)]
    return 1 if failed or broke_off or len(records) < len(args.only) else 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials for every contender")
    parser.add_argument("--budget-s", type=float, default=480, help="the whole run's time")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=list(CONTENDERS),
        help=f"contenders, comma-separated, in this order: {','.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--work",
        type=lambda p: Path(p).resolve(),
        default=Path("runs/gpu_search").resolve(),
        help="the contenders' outputs (checkpoints included)",
    )
    parser.add_argument(
        "--logs", type=lambda p: Path(p).resolve(), help="logs and raw.json; default <work>/logs"
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="keep the contenders not in --only from the last run's raw.json in --logs",
    )
    parser.add_argument(
        "--redraw",
        type=Path,
        metavar="RAW_JSON",
        help="run nothing: write the tables again from a run's raw.json (a copy goes to --logs)",
    )
    return parser


def earlier_records(args: argparse.Namespace, facts: dict, monitor: Monitor) -> dict[str, dict]:
    """With --add: the earlier run's records of the contenders not run again, and its samples."""
    raw = args.logs / "raw.json"
    if not args.add or not raw.is_file():
        return {}
    earlier = json.loads(raw.read_text())
    kept = {name: r for name, r in earlier["records"].items() if name not in args.only}
    monitor.samples.extend(tuple(sample) for sample in earlier["samples"])
    if kept:
        facts["notes"].append(f"{', '.join(kept)}: from the earlier run of {earlier['date']}.")
    return kept


def collect(name: str, outcome: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The contender's record: what benchmarks.gpu.records reads back, and how and when it ran."""
    from benchmarks.gpu.records import peer_record, placement_lines, search_record

    out = args.work / name
    try:
        if name == "peer":
            record = peer_record(out)
        else:
            record = {**search_record(out), **placement_lines(args.logs / f"{name}.log")}
    except Exception as exc:  # whatever broke, the other contenders' numbers still get written
        record = {"trials": [], "problems": [f"records unreadable ({first_line(exc)})"]}
    finished_at = record.get("finished_at")
    if outcome["cut_at"] and finished_at and finished_at <= outcome["cut_at"]:
        # The search had finished; its process did not exit in time (Ray's shutdown, say).
        outcome = {**outcome, "ended": finished_at, "cut_at": None}
        record["problems"].append(
            "its process outlived its time after the search had finished: its end is when "
            "the search marked search.json finished"
        )
    return {**record, **outcome, "trials_asked": args.trials}


def write(facts: dict, records: dict, samples: list, logs: Path) -> str:
    """The raw records beside the logs; the summary and its table in results/."""
    records = {name: records[name] for name in CONTENDERS if name in records}  # in run order
    logs.mkdir(parents=True, exist_ok=True)
    raw = {**facts, "records": records, "samples": samples}
    (logs / "raw.json").write_text(json.dumps(raw, indent=2) + "\n")
    summary = summarize(facts, records, samples)
    table = markdown(summary)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / f"{NAME}.md").write_text(table)
    return table


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _estimate(shared: dict) -> dict | None:
    from benchmarks.gpu.records import trial_estimate

    try:
        return trial_estimate(shared)
    except Exception as exc:
        say(f"warning: no memory estimate ({first_line(exc)})")
        return None


def _write_quietly(facts: dict, records: dict, samples: list, logs: Path) -> str | None:
    try:
        return write(facts, records, samples, logs)
    except Exception as exc:  # a table bug must not lose the measurements: raw.json has them
        say(f"error: tables not written ({type(exc).__name__}: {first_line(exc)})")
        return None


if __name__ == "__main__":
    sys.exit(main())
