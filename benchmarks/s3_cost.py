"""What a search on S3 storage costs in requests and uploaded bytes: the reduced setting's search
with `storage: s3://...` on an S3 endpoint in this process (moto's server on 127.0.0.1), every
request counted by kind of object, against what the bucket holds at the end.

Tune saves its experiment state (which trials exist, the searcher's state) every
TUNE_GLOBAL_CHECKPOINT_S seconds, 1 in this project (search/tuner.py), and uploads it with every
trial's record each time; --checkpoint-s runs the same search with each period, one after the
other (two at once did not start on a loaded 2-core machine: Ray's node start-up timed out).

    python -m benchmarks.s3_cost --checkpoint-s 1 10

Writes benchmarks/results/s3_cost.json and .md; the searches run under --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import threading
from collections import Counter
from pathlib import Path

from benchmarks.hpo import run_search
from benchmarks.layout import RESULTS, WORK
from search.connect import free_ports

BUCKET = "finetune-hpo-bench"
KINDS = {  # the first pattern a key matches names its kind
    "checkpoints": r"/checkpoints/",
    "trial records": r"/run_trial_[^/]+/",
    "experiment state": r"/(experiment_state|searcher-state|search_gen_state)[^/]*$|/tuner\.pkl$",
}


def kind(key: str) -> str:
    return next((name for name, pattern in KINDS.items() if re.search(pattern, key)), "other")


class Counted:
    """A WSGI middleware: requests and request-body bytes per (run, kind of object, method), the
    run being the first folder of the key (one prefix per search)."""

    def __init__(self, app):
        self.app, self.lock = app, threading.Lock()
        self.requests, self.uploaded = Counter(), Counter()

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"]
        counted = {"bytes": 0}

        class Reader:  # counts the body as the server reads it, chunked or not
            def read(self, *args):
                data = body.read(*args)
                counted["bytes"] += len(data)
                return data

            def readline(self, *args):
                data = body.readline(*args)
                counted["bytes"] += len(data)
                return data

            def __iter__(self):
                return iter(self.readline, b"")

        environ["wsgi.input"] = Reader()
        try:
            return self.app(environ, start_response)
        finally:
            path = environ.get("PATH_INFO", "")
            run = (path.split("/") + ["", "", ""])[2]
            key = (run, kind(path), environ["REQUEST_METHOD"])
            with self.lock:
                self.requests[key] += 1
                self.uploaded[key] += counted["bytes"]


def serve() -> tuple[str, Counted, object]:
    """moto's S3 server in a thread of this process, its requests counted; (url, counts, server)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    (port,) = free_ports(1)
    counted = Counted(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, counted, True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", counted, server


def stored(client, prefix: str) -> Counter:
    """Bytes the bucket holds under `prefix`, by kind."""
    held = Counter()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            held[kind("/" + item["Key"])] += item["Size"]
    return held


def measure(out: Path, checkpoint_s: int, client, counted: Counted) -> dict:
    """The reduced setting's search on the bucket, saving Tune's state every `checkpoint_s`."""
    run = f"period-{checkpoint_s}s"
    env = {"TUNE_GLOBAL_CHECKPOINT_S": str(checkpoint_s), "RAY_TMPDIR": f"/tmp/ray-{run}"}
    result = run_search("reduced", out / run, 4, f"storage=s3://{BUCKET}/{run}", env=env)
    held = stored(client, f"{run}/")
    mine = Counter({key[1:]: n for key, n in counted.requests.items() if key[0] == run})
    uploaded = Counter({key[1:]: n for key, n in counted.uploaded.items() if key[0] == run})
    return {
        "checkpoint_s": checkpoint_s,
        "wall_s": round(result["wall_s"], 1),
        "trials": len(result["trials"]),
        "requests": by_kind(mine),
        "requests_by_method": dict(Counter(m for _, m in mine.elements())),
        "uploaded_bytes": by_kind(uploaded),
        "stored_bytes": {k: held[k] for k in [*KINDS, "other"]},
    }


def by_kind(counts: Counter) -> dict[str, int]:
    """(kind, method) counts summed per kind."""
    return {k: sum(n for (k2, _), n in counts.items() if k2 == k) for k in [*KINDS, "other"]}


def table(rows: list[dict]) -> list[str]:
    def mb(n: int) -> str:
        return f"{n / 2**20:.2f} MB"

    lines = [
        "| TUNE_GLOBAL_CHECKPOINT_S | wall | kind | requests | uploaded | held at the end |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for k in row["requests"]:
            lines.append(
                f"| {row['checkpoint_s']} s | {row['wall_s']:.0f} s | {k} | {row['requests'][k]} "
                f"| {mb(row['uploaded_bytes'][k])} | {mb(row['stored_bytes'][k])} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint-s", type=int, nargs="+", default=[1])
    parser.add_argument("--out", type=lambda p: Path(p).resolve(), default=WORK / "s3_cost")
    args = parser.parse_args()

    import boto3

    url, counted, server = serve()
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "benchmark",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update(env)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    rows = [measure(args.out, seconds, client, counted) for seconds in args.checkpoint_s]
    server.shutdown()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "s3_cost.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "s3_cost.md").write_text("\n".join(table(rows)) + "\n")
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
