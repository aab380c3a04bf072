"""The driver's data phase on a CSV, timed: `load_task` of search.run at max_length 128 with
the tiny model's config, its seconds, the process's peak memory and the pickled size of the
splits the trials receive. Run as a file, it measures whichever tree PYTHONPATH names:

    PYTHONPATH=/path/to/checkout HF_DATASETS_CACHE=$(mktemp -d) \
        python benchmarks/data_phase.py big.csv [MAX_LENGTH]

Its last line is the same numbers as JSON (benchmarks/long_texts.py reads it).
"""

import json
import pickle
import resource
import sys
import time

started = time.time()
from search.run import load_task  # noqa: E402
from trainable.config_file import load_config  # noqa: E402

max_length = int(sys.argv[2]) if len(sys.argv) > 2 else 128
overrides = {"data.source": sys.argv[1], "data.max_rows": None, "model.max_length": max_length}
cfg = load_config("configs/tiny.yaml", overrides)
loading = time.time()
cfg, texts, splits, shape = load_task(cfg)
done = time.time()
size = len(pickle.dumps({k: splits[k] for k in ("train", "validation")}))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    f"imports {loading - started:.1f} s, load_task {done - loading:.1f} s, peak {peak:.0f} MB, "
    f"train+validation pickled {size / 2**20:.0f} MB, rows {[len(s) for s in splits.values()]}",
    flush=True,
)
print(
    json.dumps(
        {
            "load_task_s": round(done - loading, 2),
            "peak_mb": round(peak),
            "pickled_mb": round(size / 2**20, 1),
            "rows": [len(s) for s in splits.values()],
        }
    )
)
