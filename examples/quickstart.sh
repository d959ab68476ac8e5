#!/usr/bin/env bash
# The main job, offline: index the bilingual example corpus into Milvus Lite with
# real models (multilingual-e5-small dense, splade-tiny sparse, BM25), then search
# it through every path and print explained hits.
set -euo pipefail
cd "$(dirname "$0")/.."
hs() { .venv/bin/hybrid-search --config examples/hybrid-search.toml "$@"; }
export HF_HUB_OFFLINE=1
hs index examples/corpus.jsonl
hs search "how does fusion combine keyword and vector results?" -k 3
hs search "向量数据库" -k 2
hs search "a database that needs no server" --paths dense -k 2
hs search "rerank" --paths bm25 --filter 'metadata.lang == "en"' -k 2
