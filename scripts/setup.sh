#!/usr/bin/env bash
# One-command setup: a virtualenv in .venv with the CPU build of torch, this
# package with its dev extras, and the real pretrained models that can be had
# offline (all-MiniLM-L6-v2, splade-tiny, multilingual-e5-small), named in the
# model profile ~/.config/hybrid-search/models.toml.
#   SKIP_MODELS=1   do not fetch models (the tests build their own tiny ones)
#   TORCH_SPEC=...  another torch requirement (default: torch==2.13.0, CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first: a looser requirement pulled in by a dependency would download a
# multi-GB CUDA build.
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
if [ "${SKIP_MODELS:-0}" != 1 ]; then
  models="${HYBRID_SEARCH_MODELS:-$HOME/.cache/hybrid-search-models}"
  PYTHON=.venv/bin/python bash scripts/get-models.sh "$models"
  # The model profile: index and search use these offline models when no flag,
  # config file or variable names one (an existing profile is kept).
  .venv/bin/hybrid-search profile write-local "$models"
fi
echo "ready: . .venv/bin/activate && hybrid-search --help"
