#!/usr/bin/env bash
# The real training runs, as executed on a lent GPU machine (one H100, Python
# 3.12 with torch, no network, 64 MiB per transfer). On a machine with the
# project installed and ~/.cache/hybrid-search-models/all-MiniLM-L6-v2 in
# place, the whole of it is just:
#
#   python -m training.cli all --config benchmarks/results/training/nvidia_sec_10k.toml
#   python -m training.cli all --config benchmarks/results/training/scifact_label_free.toml
#
# The steps below only get the missing packages and the model onto that
# machine in pieces small enough to carry. Prepared here (both folders are
# git-ignored):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 --platform any -d .whl milvus-lite==2.5.1 pymilvus==3.0.2 \
#     FlagEmbedding==1.4.2 sentence-transformers==6.2.0 datasets==5.2.0 snowballstemmer ranx==0.3.21 \
#     orjson lz4 cbor2 python-dotenv cachetools "setuptools<81" dill multiprocess
#   M=~/.cache/hybrid-search-models/all-MiniLM-L6-v2; mkdir -p .gpu/a .gpu/b
#   split -b 45500000 $M/model.safetensors .gpu/minilm.part.   # -> .gpu/a/…aa, .gpu/b/…ab
#   (cd $M && tar czf .gpu/b/minilm_rest.tgz --exclude=model.safetensors .)
#   (cd ../shared/datasets && tar czf .gpu/a/datasets.tgz nvidia_sec_10k scifact)
#   sha256sum $M/model.safetensors | cut -c1-64 > .gpu/b/minilm.sha256
#   setup   carry .whl (wheels for python 3.12, see README.md here): install
#           them into /tmp/site, then run the tiny-model flow test there
#   stash   carry .gpu/a (half of all-MiniLM-L6-v2's weights + the datasets)
#   run N   carry .gpu/b (the other half + tokenizer/config files): assemble,
#           check the sha256, run config N, pack the results into $OUT
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/stash

case "${1:-}" in
setup)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  # ranx imports ir_datasets at import time but never uses it for evaluate().
  mkdir -p /tmp/site/ir_datasets && touch /tmp/site/ir_datasets/__init__.py
  python3 - <<'PY'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("transformers", "sentence_transformers", "FlagEmbedding", "datasets", "pyarrow", "pymilvus", "milvus_lite", "ranx", "accelerate", "peft", "sklearn", "setuptools"):
    module = importlib.import_module(name)
    print(name, getattr(module, "__version__", "?"))
import hybrid_search.engine, training.pipeline  # noqa: F401
print("imports ok")
PY
  mkdir -p ../shared && touch ../shared/.writable && echo "../shared writable"
  if [ -z "${SKIP_TEST:-}" ]; then
    timeout 400 python3 -m pytest tests/integration/training/test_flow.py -x -q -p no:cacheprovider 2>&1 | tail -15
  fi
  ;;
stash)
  cp .gpu/a/* /tmp/stash/ && ls -la /tmp/stash
  ;;
run)
  name=$2
  [ -d .gpu/b ] && cp .gpu/b/* /tmp/stash/
  model=~/.cache/hybrid-search-models/all-MiniLM-L6-v2
  if [ ! -f "$model/model.safetensors" ]; then
    mkdir -p "$model" && tar xzf /tmp/stash/minilm_rest.tgz -C "$model"
    cat /tmp/stash/minilm.part.aa /tmp/stash/minilm.part.ab > "$model/model.safetensors"
    echo "$(cat /tmp/stash/minilm.sha256)  $model/model.safetensors" | sha256sum -c -
  fi
  if [ ! -d ../shared/datasets/scifact ]; then
    mkdir -p ../shared/datasets && tar xzf /tmp/stash/datasets.tgz -C ../shared/datasets
  fi
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  set +e
  python3 -m training.cli all --config "benchmarks/results/training/$name.toml" > "$OUT/$name.log" 2>&1
  status=$?
  set -e
  grep -v "it/s\]\|s/it\]\|Warning\|^I1\|^E1\|^W1" "$OUT/$name.log" | tail -60
  run=runs/training/$name
  tar czf "$OUT/$name.tgz" --ignore-failed-read "$run/pipeline.json" "$run/evaluation/evaluation.json" "$run/evaluation/evaluation.md" \
    "$run/data/manifest.json" "$run/data/split.json" "$run/data/negatives.json" "$run/dense/run.json" "$run/sparse/run.json" \
    "$run/sparse/collapse_check.json" "$run/reranker/run.json" "$OUT/$name.log" 2>/dev/null || true
  exit $status
  ;;
*)
  echo "usage: $0 setup | stash | run NAME" >&2; exit 2
  ;;
esac
