#!/usr/bin/env bash
# How the nvidia_sec_10k_reranker.toml reranker was trained on the lent GPU
# (one H100; 64 MiB per transfer, no network): the data and negatives were
# made here on CPU (`python -m training.cli all --config
# benchmarks/results/training/nvidia_sec_10k_reranker.toml`, stopped at the
# reranker stage), then carried in .gpu2/ (git-ignored) with:
#   mkdir -p .gpu2/whl .gpu2/data .gpu2/minilm
#   cp .whl/{datasets,dill,multiprocess,sentence_transformers,snowballstemmer}-*.whl .gpu2/whl/
#   D=runs/training/nvidia_sec_10k_reranker/data
#   cp $D/{corpus.jsonl,dev.jsonl,manifest.json,negatives.json,split.json,test.jsonl,train.jsonl} .gpu2/data/
#   gzip -c $D/train_negatives.jsonl > .gpu2/data/train_negatives.jsonl.gz
#   all-MiniLM-L6-v2's config/tokenizer files into .gpu2/minilm/, its weights
#   saved as fp16 (44 MB; restored to fp32 there before training)
# and run there as `bash .gpu2/run.sh` (this file). The model comes back as
# fp16 pieces under 16 MB plus rest.tgz (config, tokenizer, run.json); here:
#   cat model16.part.* > m16.safetensors; restore fp32 into reranker/model/model.safetensors
# Reranker-only training of nvidia_sec_10k_reranker.toml on the lent GPU:
# carries 5 wheels, the mined data and all-MiniLM-L6-v2 (fp16 to fit 64 MiB).
set -euo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -z "${LOCAL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu2/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD; PY=python3
else
  PY=.venv/bin/python
fi
D=/tmp/nvdata; rm -rf $D; mkdir -p $D; cp .gpu2/data/* $D/; gunzip -f $D/train_negatives.jsonl.gz
nvidia-smi --query-gpu=name --format=csv,noheader || true
# The weights travel in fp16; train from fp32 as the original is.
rm -rf /tmp/minilm && cp -r .gpu2/minilm /tmp/minilm
$PY -c "
from safetensors.torch import load_file, save_file
t = load_file('/tmp/minilm/model.safetensors')
save_file({k: v.float().contiguous() for k, v in t.items()}, '/tmp/minilm/model.safetensors', metadata={'format': 'pt'})
"
$PY - <<'PY' > "$OUT/train.log" 2>&1 || { tail -c 3000 "$OUT/train.log"; exit 1; }
import dataclasses, json, os, shutil, time
from pathlib import Path
from training.pipeline import load_pipeline_config
from training.data import load_training_data
from training.reranker import train_reranker
config = load_pipeline_config(Path("benchmarks/results/training/nvidia_sec_10k_reranker.toml"))
reranker = dataclasses.replace(config.reranker, base_model="/tmp/minilm", epochs=float(os.environ.get("EPOCHS", config.reranker.epochs)))
run = Path("/tmp/rr"); shutil.rmtree(run, ignore_errors=True)
t = time.time()
metrics = train_reranker(load_training_data(Path("/tmp/nvdata")), reranker, run, progress=False)
print(json.dumps(metrics, indent=1)); print("train seconds", round(time.time() - t, 1))
from safetensors.torch import load_file, save_file
tensors = load_file(run / "model" / "model.safetensors")
save_file({k: v.half().contiguous() for k, v in tensors.items()}, "/tmp/model16.safetensors", metadata={"format": "pt"})
(run / "model" / "model.safetensors").unlink()
PY
split -b 15000000 /tmp/model16.safetensors "$OUT/model16.part."
tar czf "$OUT/rest.tgz" -C /tmp/rr model run.json
ls -la "$OUT"
tail -c 2500 "$OUT/train.log"
