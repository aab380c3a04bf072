"""Placement groups left behind by a search's trials, counted from outside the search.

    python -m benchmarks.placement_leak --trials 12 [--source OTHER_CHECKOUT] [--out DIR]

Starts a one-node Ray cluster (`ray start --head`, 2 CPUs), runs the tiny search on it through
`--address` (from this tree, or from another checkout with --source), two trials at once, ASHA
stopping some, no refit, and meanwhile asks the cluster's state API every 2 s for placement
groups that no live actor uses. A group seen unused for LEFT_AFTER_S or more counts as left
behind. Writes `<out>/placement_leak.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEFT_AFTER_S = 10.0


def census(state_url: str, stop: threading.Event) -> dict[str, float]:
    """Each group's longest stretch unused, in seconds, until `stop` is set."""
    from ray.util.state import list_actors, list_placement_groups

    from search.placement import LIVE_ACTOR_STATES

    unused_since: dict[str, float] = {}
    longest: dict[str, float] = {}
    while not stop.wait(2):
        try:
            groups = list_placement_groups(state_url, limit=10_000, raise_on_missing_output=False)
            actors = list_actors(
                state_url, detail=True, limit=10_000, raise_on_missing_output=False
            )
        except Exception:  # the dashboard is busy: look again
            continue
        used = {a.placement_group_id for a in actors if a.state in LIVE_ACTOR_STATES}
        now = time.monotonic()
        for group in groups:
            gid = group.placement_group_id
            if group.state == "CREATED" and gid not in used:
                since = unused_since.setdefault(gid, now)
                longest[gid] = max(longest.get(gid, 0.0), now - since)
            else:
                unused_since.pop(gid, None)
    return longest


def stop_cluster(temp_dir: Path) -> None:
    """Ends this cluster's processes alone: `ray stop` would end every Ray on the machine."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        mine = process.pid == os.getpid()
        if not mine and str(temp_dir) in " ".join(process.info["cmdline"] or []):
            process.kill()


def wait_for_state_api(state_url: str, timeout_s: float = 180) -> None:
    from ray.util.state import list_actors

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            list_actors(state_url, limit=1, raise_on_missing_output=False)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    # `ray start --head` makes a token when none exists; every process of the cluster shares it.
    # Ray reads the mode once, as it is imported.
    os.environ["RAY_AUTH_MODE"] = "token"
    from search.connect import free_ports

    gcs, dashboard = free_ports(2)
    state_url = f"http://127.0.0.1:{dashboard}"
    tmp = Path(f"/tmp/rleak{gcs}")
    env = {**os.environ, "RAY_TMPDIR": str(tmp), "PYTHONPATH": str(args.source)}
    subprocess.run(
        ["ray", "start", "--head", f"--port={gcs}", "--num-cpus=2", "--include-dashboard=true",
         f"--dashboard-port={dashboard}", f"--temp-dir={tmp}", "--disable-usage-stats"],
        check=True, env=env,
    )  # fmt: skip
    wait_for_state_api(state_url)
    stop, found = threading.Event(), {}
    watcher = threading.Thread(target=lambda: found.update(census(state_url, stop)))
    watcher.start()
    started = time.monotonic()
    try:
        search = subprocess.run(
            [sys.executable, "-m", "search.run", "--config", "configs/tiny.yaml",
             "--trials", str(args.trials), "--max-concurrent", "2", "--address", f"127.0.0.1:{gcs}",
             "--output", str(tmp / "out"), "--set", "space.epochs=[1, 2, 3]",
             "--set", "search.grace_period=1", "--set", "resources.placement_timeout_s=120"],
            cwd=args.source, env=env, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        stop.set()
        watcher.join()
        stop_cluster(tmp)
    log = search.stdout + search.stderr
    result = {
        "source": str(args.source),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=args.source,
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "trials": args.trials,
        "exit_code": search.returncode,
        "last_line": (log.strip().splitlines() or [""])[-1],
        "wall_s": round(time.monotonic() - started, 1),
        "groups_seen_unused": len(found),
        "left_behind": sum(s >= LEFT_AFTER_S for s in found.values()),
        "longest_unused_s": round(max(found.values(), default=0.0), 1),
        "removed_by_the_search": log.count("removed a placement group"),
        "trials_not_placed": log.count("could not be placed"),
    }
    print(json.dumps(result, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "placement_leak.json" if args.source == ROOT else "placement_leak_baseline.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
