"""finetune-hpo, the in-process peer and the seed recipe, one after another, side by side.

The seed recipe runs twice: on train only (validation scores it, like every trial) and on
train + validation, as the notebook trains and as finetune-hpo's refit does.

    python -m benchmarks.compare --setting reduced   # about fifteen minutes
    python -m benchmarks.compare --setting full      # the record: about three hours on 2 cores
    python -m benchmarks.compare --setting reviews   # 3,000 movie reviews: about 80 minutes

Writes benchmarks/results/<setting>.json and .md (the table BENCHMARKS.md quotes).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import torch

from benchmarks.common import SETTINGS, config_for, flops_per_token, tokenized_splits
from benchmarks.contenders import CONTENDERS, run_contender
from benchmarks.hpo import SEARCH_DIR, score_trials
from benchmarks.layout import PEAKS_FILE, RAW_FILE, RESULTS, WORK
from benchmarks.matmul_peak import matmul_peak_gflops
from benchmarks.summary import SettingFacts, summarize
from benchmarks.tables import markdown
from search.layout import BEST_MODEL
from trainable import data


def main() -> None:
    args = parser().parse_args()
    out = args.work / args.setting
    raw = out / RAW_FILE
    redraw = args.tables_only or args.rescore
    results = json.loads(raw.read_text()) if args.add or redraw else {}
    if args.rescore:
        score_trials(results["hpo"], args.setting, out / SEARCH_DIR / BEST_MODEL)
        raw.write_text(json.dumps(results, indent=2))
    for name in [] if redraw else args.only.split(","):
        print(f"== {CONTENDERS[name].label} ({args.setting})", flush=True)
        results[name] = run_contender(name, args.setting, out)
        raw.write_text(json.dumps(results, indent=2))
    machine = torch.get_num_threads()
    trial = results.get("hpo", {}).get("threads", machine)
    peaks = measured_peaks(out / PEAKS_FILE, {machine, trial}, reuse=redraw)
    target = args.target or SETTINGS[args.setting]["target"]
    summary = summarize(setting_facts(args.setting), results, target, peaks, machine)
    table = markdown(summary)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.setting}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / f"{args.setting}.md").write_text(table)
    print(table)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="reduced")
    parser.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"contenders, comma-separated, of {','.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--target", type=float, help="validation F1 to reach (default: the setting's)"
    )
    parser.add_argument(
        "--work", type=Path, default=WORK, help="scratch folder for the contenders' outputs"
    )
    parser.add_argument(
        "--add", action="store_true", help="keep the contenders already measured in the work folder"
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="redraw the tables from the contenders that finished, run nothing",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the finished finetune-hpo run's kept checkpoints on test again (what an "
        "older run did not record), then redraw the tables; trains nothing",
    )
    return parser


def measured_peaks(record: Path, threads: set[int], reuse: bool) -> dict[int, float]:
    """The fp32 matmul peak by thread count, measured once when the contenders have run and
    kept beside their results, so that redrawn tables quote the peak of the run's own time."""
    kept = {int(n): p for n, p in json.loads(record.read_text()).items()} if record.exists() else {}
    peaks = {n: kept[n] if reuse and n in kept else matmul_peak_gflops(n) for n in threads}
    record.write_text(json.dumps({**kept, **peaks}, indent=2) + "\n")
    return peaks


def setting_facts(setting: str) -> SettingFacts:
    """The setting's split sizes and its model's FLOPs per token, read from disk."""
    cfg = config_for(setting)
    splits = tokenized_splits(cfg)[1]
    positive = cfg.data.labels.index(cfg.data.positive_label)
    return SettingFacts(
        name=setting,
        train_messages=len(splits["train"]),
        test_messages=len(splits["test"]),
        positive_label=cfg.data.positive_label,
        test_positives=sum(label == positive for label in splits["test"][data.LABEL]),
        flops_per_token=functools.partial(flops_per_token, setting),
    )


if __name__ == "__main__":
    main()
