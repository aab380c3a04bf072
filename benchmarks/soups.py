"""Averaging the top trials of a finished benchmark run: model soups and logit ensembles.

    python -m benchmarks.soups --setting full --work runs/bench6   # about 15 minutes

Reads the finetune-hpo run in `<work>/<setting>/raw.json`, whose every trial kept its best
checkpoint. Trials are ranked as the search ranks them (validation F1, ties to the lower eval
loss). A uniform soup averages the top k trials' weights; every trial starts from the same
pretrained weights and the same seeded head, so their weights stay averageable. An ensemble
averages their logits. The greedy soup (Wortsman et al., 2022) walks the trials in rank order
and keeps one if validation F1 does not drop (ties: if eval loss does not rise). Test scores
every result, to decide whether averaging would earn a place in the search; the table goes to
results/soups-<setting>.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding

from benchmarks.common import SETTINGS, config_for, load_classifier, metrics_for, tokenized_splits
from benchmarks.layout import RAW_FILE, WORK, save_results
from trainable import data

SPLITS = ("validation", "test")
TOP_K = (2, 3, 5, 10, 20)


def ranked_checkpoints(hpo: dict) -> list[str]:
    best = [t["best"] for t in hpo["trials"] if t.get("best")]
    best.sort(key=lambda b: (-b["eval_f1"], b["eval_loss"]))
    return [b["checkpoint"] for b in best if Path(b["checkpoint"]).is_dir()]


class Scorer:
    """Logits, spam F1 and loss of a model on validation and test, batches padded once."""

    def __init__(self, setting: str, batch_size: int = 64):
        cfg = config_for(setting)
        tokenizer, splits = tokenized_splits(cfg)
        self.metrics = metrics_for(cfg)
        collate = DataCollatorWithPadding(tokenizer)
        self.batches, self.labels = {}, {}
        for name in SPLITS:
            rows = [{"input_ids": ids} for ids in splits[name]["input_ids"]]
            self.batches[name] = [
                collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)
            ]
            self.labels[name] = np.asarray(splits[name][data.LABEL])

    @torch.no_grad()
    def logits(self, model) -> dict[str, np.ndarray]:
        model.eval()
        return {
            name: torch.cat([model(**batch).logits for batch in batches]).numpy()
            for name, batches in self.batches.items()
        }

    def scores(self, logits: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        out = {}
        for name, value in logits.items():
            labels = self.labels[name]
            loss = torch.nn.functional.cross_entropy(
                torch.from_numpy(value), torch.from_numpy(labels)
            )
            out[name] = {
                "f1": self.metrics((value, labels))["f1"],
                "loss": float(loss),
                "wrong": int((value.argmax(-1) != labels).sum()),
            }
        return out


def greedy(candidates: int, combine, scorer: Scorer) -> tuple[list[int], dict]:
    kept, current = [0], scorer.scores(combine([0]))
    for i in range(1, candidates):
        trial = scorer.scores(combine([*kept, i]))
        new, old = trial["validation"], current["validation"]
        if (new["f1"], -new["loss"]) >= (old["f1"], -old["loss"]):
            kept, current = [*kept, i], trial
    return kept, current


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="full")
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args()
    hpo = json.loads((args.work / args.setting / RAW_FILE).read_text())["hpo"]
    checkpoints = ranked_checkpoints(hpo)
    scorer = Scorer(args.setting)
    weights, logits = [], []
    for checkpoint in checkpoints:
        model = load_classifier(checkpoint)
        weights.append({k: v.float() for k, v in model.state_dict().items()})
        logits.append(scorer.logits(model))
    base = load_classifier(checkpoints[0])

    def soup(members: list[int]) -> dict[str, np.ndarray]:
        base.load_state_dict(
            {k: sum(weights[i][k] for i in members) / len(members) for k in weights[0]}
        )
        return scorer.logits(base)

    def ensemble(members: list[int]) -> dict[str, np.ndarray]:
        return {name: np.mean([logits[i][name] for i in members], axis=0) for name in SPLITS}

    rows = [("the selected trial's checkpoint", scorer.scores(logits[0]))]
    for k in (k for k in TOP_K if k <= len(checkpoints)):
        rows.append((f"uniform soup of the top {k}", scorer.scores(soup(list(range(k))))))
        rows.append((f"logit ensemble of the top {k}", scorer.scores(ensemble(list(range(k))))))
    for label, combine in (("greedy soup", soup), ("greedy logit ensemble", ensemble)):
        kept, scores = greedy(len(checkpoints), combine, scorer)
        rows.append((f"{label}: trials {', '.join(str(i + 1) for i in kept)} by rank", scores))

    lines = [
        f"The {len(checkpoints)} trial checkpoints of `{args.work / args.setting}`, averaged:",
        "",
        "| model | validation F1 | validation loss | test spam F1 | test loss | wrong on test |",
        "|---|---|---|---|---|---|",
    ]
    for label, s in rows:
        v, t = s["validation"], s["test"]
        lines.append(
            f"| {label} | {v['f1']:.4f} | {v['loss']:.4f} | {t['f1']:.4f} | {t['loss']:.4f} | "
            f"{t['wrong']} |"
        )
    save_results(f"soups-{args.setting}", rows, lines)


if __name__ == "__main__":
    main()
