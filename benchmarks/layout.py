"""Where the benchmarks write, by name (light: no heavy imports)."""

from pathlib import Path

RESULTS = Path(__file__).parent / "results"  # the tables BENCHMARKS.md quotes, and their numbers
WORK = Path("runs/benchmark")  # the contenders' outputs, one subfolder per setting
RAW_FILE = "raw.json"  # in <work>/<setting>: every contender's record, as compare read it back
PEAKS_FILE = "peaks.json"  # in <work>/<setting>: the matmul peak by thread count, at the run's end
