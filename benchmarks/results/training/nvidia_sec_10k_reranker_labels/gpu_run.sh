set -euo pipefail
# Reranker trained on the labelled questions only (no pseudo-queries), then
# its scores for the engine's test lists: one GPU call.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out4}; mkdir -p "$OUT"
if [ -z "${LOCAL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu4/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD; PY=python3
else
  PY=.venv/bin/python
fi
D=/tmp/nvdata; rm -rf $D; mkdir -p $D; cp .gpu4/data/* $D/; gunzip -f $D/train_negatives.jsonl.gz
rm -rf /tmp/minilm && cp -r .gpu4/minilm /tmp/minilm
$PY -c "
from safetensors.torch import load_file, save_file
t = load_file('/tmp/minilm/model.safetensors')
save_file({k: v.float().contiguous() for k, v in t.items()}, '/tmp/minilm/model.safetensors', metadata={'format': 'pt'})
"
$PY - <<'PY' > "$OUT/train.log" 2>&1 || { tail -c 3000 "$OUT/train.log"; exit 1; }
import dataclasses, json, os, shutil
from pathlib import Path
from training.pipeline import load_pipeline_config
from training.data import load_training_data
from training.reranker import train_reranker
config = load_pipeline_config(Path("benchmarks/results/training/nvidia_sec_10k_reranker.toml"))
reranker = dataclasses.replace(config.reranker, base_model="/tmp/minilm", sources=("labels",), epochs=float(os.environ.get("EPOCHS", 4)))
run = Path("/tmp/rr4"); shutil.rmtree(run, ignore_errors=True)
print(json.dumps(train_reranker(load_training_data(Path("/tmp/nvdata")), reranker, run, progress=False), indent=1))
PY
cp /tmp/rr4/run.json "$OUT/run.json"
mkdir -p /tmp/s4 && cp .gpu4/candidates.json.gz /tmp/s4/
$PY benchmarks/results/training/rerank_offload.py score /tmp/s4 /tmp/rr4/model > "$OUT/score.log" 2>&1 || { tail -c 3000 "$OUT/score.log"; exit 1; }
cp /tmp/s4/scores.json "$OUT/"
grep "'loss'" "$OUT/train.log" || true; tail -c 300 "$OUT/score.log"; ls -la "$OUT"
