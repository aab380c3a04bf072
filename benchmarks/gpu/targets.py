"""Issue 16's targets for the GPU benchmark, and a verdict on each from the contenders' rows
(`benchmarks.gpu.tables.contender_row`; pure).

A verdict is `met`, `missed`, or `unknown: why` where the numbers it needs are missing or come
from a contender stopped at its time budget.
"""

from __future__ import annotations

WALL_RATIO_MAX = 1.0  # packed search's wall over the peer's, at equal or better best val F1
RATE_RATIO_MIN = 8.0  # packed search's trials per GPU-hour over the one-at-a-time search's
FIXED_COST_MAX_S = 10.0  # packed search's median per-trial fixed cost


def verdicts(rows: dict[str, dict]) -> list[dict[str, str]]:
    packed, peer, single = rows.get("packed"), rows.get("peer"), rows.get("single")
    return [
        _wall_verdict(packed, peer),
        _ratio_verdict(
            f"trials per GPU-hour at least {RATE_RATIO_MIN:g}x the one-at-a-time search's",
            packed,
            single,
            "trials_per_gpu_hour",
            RATE_RATIO_MIN,
        ),
        _fixed_cost_verdict(packed),
        _ratio_verdict(
            "GPU busy share at least the peer's", packed, peer, "gpu_busy", 1.0, percent=True
        ),
    ]


def _verdict(target: str, measured: str, verdict: str) -> dict[str, str]:
    return {"target": target, "measured": measured, "verdict": verdict}


def _wall_verdict(packed: dict | None, peer: dict | None) -> dict[str, str]:
    target = (
        f"search wall at most {WALL_RATIO_MAX:.1f}x the peer's, at equal or better best "
        "validation F1"
    )
    if not packed or not peer:
        return _verdict(target, "-", "unknown: needs the packed search and the peer")
    ratio = packed["wall_s"] / peer["wall_s"]
    mine, theirs = packed["best_val_f1"], peer["best_val_f1"]
    measured = f"{ratio:.2f}x; best val F1 {score_text(mine)} against {score_text(theirs)}"
    if packed["cut"] and ratio > WALL_RATIO_MAX:
        return _verdict(target, measured, "missed (stopped at its time budget, already longer)")
    if packed["cut"] or peer["cut"]:
        return _verdict(target, measured, "unknown: a contender was stopped at its time budget")
    if mine is None or theirs is None:
        return _verdict(target, measured, "unknown: a best validation F1 is missing")
    return _verdict(target, measured, _met(ratio <= WALL_RATIO_MAX and mine >= theirs))


def _ratio_verdict(
    target: str,
    mine: dict | None,
    theirs: dict | None,
    key: str,
    at_least: float,
    percent: bool = False,
) -> dict[str, str]:
    a, b = (mine or {}).get(key), (theirs or {}).get(key)
    if a is None or b is None:
        return _verdict(target, "-", "unknown: not measured for both contenders")
    shown = (f"{a:.0%}", f"{b:.0%}") if percent else (f"{a:.0f}", f"{b:.0f}")
    if b == 0:
        return _verdict(target, f"{shown[0]} against {shown[1]}", _met(a > 0))
    return _verdict(
        target, f"{a / b:.2f}x ({shown[0]} against {shown[1]})", _met(a / b >= at_least)
    )


def _fixed_cost_verdict(packed: dict | None) -> dict[str, str]:
    target = f"per-trial fixed cost at most {FIXED_COST_MAX_S:g} s (median), packed search"
    cost = (packed or {}).get("overhead_median_s")
    if cost is None:
        return _verdict(target, "-", "unknown: no trial of the packed search ended")
    return _verdict(target, f"{cost:.1f} s", _met(cost <= FIXED_COST_MAX_S))


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def score_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
