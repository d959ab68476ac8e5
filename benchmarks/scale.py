"""The `scale` command: synthetic corpora of growing size on the engine's
Milvus schema, measuring insert rate, per-path and hybrid query latency,
memory and disk, and how each grows with size.

Rows are written and searched through ``hybrid_search.store.MilvusStore`` (the
layer ``Engine.index`` and ``Engine.search`` use) with the engine's own schema:
the BM25 function over a whitespace-analysed text field, a learned-sparse field
and a dense field. Vectors are drawn, not encoded, so the figures isolate the
store (encoder cost is measured by ``speed``):

- dense: Gaussian vectors at the encoder's dimension (384 by default), L2-normalised;
- sparse: ``--sparse-nnz`` term ids per row over a 30,522-term vocabulary (SPLADE's),
  drawn Zipf-distributed, with exponential weights;
- text: ``--doc-terms`` words per row (Poisson) from a ``--vocab``-word vocabulary
  with Zipf(``--zipf``) frequencies; queries take 2 to 6 words from the mid-frequency range.

Hybrid latency is the three path searches plus RRF fusion, exactly the work
``Engine.search`` does after encoding the query. Memory is the resident set of
this process plus its children (the Milvus Lite server); on a server URI only
this client's memory is known and disk is not measured.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_search.config import FusionConfig
from hybrid_search.fusion import fuse
from hybrid_search.store import MANIFEST_FORMAT, SCHEMA_VERSION, MilvusStore
from hybrid_search.types import Chunk

from .metrics import latency_summary
from .report import environment, fmt, machine_line, markdown_table, write_json, write_text

__all__ = ["SyntheticCorpus", "run_scale", "scale_markdown", "plot_scale"]

SPARSE_VOCAB = 30522


class SyntheticCorpus:
    def __init__(
        self, *, dim: int = 384, vocab: int = 50000, zipf: float = 1.1, doc_terms: int = 120, sparse_nnz: int = 64, seed: int = 0
    ) -> None:
        self.dim, self.vocab, self.doc_terms, self.sparse_nnz = dim, vocab, doc_terms, sparse_nnz
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(1, vocab + 1, dtype=np.float64)
        self.word_p = ranks**-zipf
        self.word_p /= self.word_p.sum()
        sparse_ranks = np.arange(1, SPARSE_VOCAB + 1, dtype=np.float64)
        self.sparse_p = sparse_ranks**-1.0
        self.sparse_p /= self.sparse_p.sum()
        # A fixed random permutation so frequent sparse ids are not all small integers.
        self.sparse_ids = self.rng.permutation(SPARSE_VOCAB)

    def _dense(self, n: int) -> np.ndarray:
        vectors = self.rng.standard_normal((n, self.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    def _sparse(self, nnz: int) -> dict[int, float]:
        ranks = np.unique(self.rng.choice(SPARSE_VOCAB, size=nnz, p=self.sparse_p))
        weights = self.rng.exponential(1.0, size=ranks.size) + 0.01
        return {int(self.sparse_ids[r]): float(w) for r, w in zip(ranks, weights)}

    def rows(self, start: int, n: int) -> list[dict[str, Any]]:
        lengths = np.maximum(1, self.rng.poisson(self.doc_terms, size=n))
        words = self.rng.choice(self.vocab, size=int(lengths.sum()), p=self.word_p)
        dense = self._dense(n)
        rows, offset = [], 0
        for i in range(n):
            terms = words[offset : offset + lengths[i]]
            offset += lengths[i]
            text = " ".join(f"w{t}" for t in terms)
            chunk = Chunk(doc_id=f"d{start + i}", chunk_index=0, text=text)
            rows.append(MilvusStore.make_row(chunk, text, dense[i], self._sparse(self.sparse_nnz)))
        return rows

    def queries(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            words = self.rng.integers(100, min(5000, self.vocab), size=int(self.rng.integers(2, 7)))
            out.append(
                {
                    "bm25": " ".join(f"w{w}" for w in words),
                    "dense": [float(x) for x in self._dense(1)[0]],
                    "sparse": self._sparse(20),
                }
            )
        return out


def _memory_mib() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    process = psutil.Process()
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _disk_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _log_default(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def measure_size(
    n: int,
    *,
    work_dir: Path,
    store_uri: str | None = None,
    dim: int = 384,
    queries: int = 100,
    depth: int = 100,
    batch: int = 1000,
    corpus_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = _log_default,
) -> dict[str, Any]:
    corpus = SyntheticCorpus(dim=dim, **(corpus_options or {}))
    folder = work_dir / f"n{n}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    db = folder / "scale.db"
    memory_before = _memory_mib()
    store = MilvusStore(store_uri or str(db))
    name = f"scale_{n}"
    if store.has_collection(name):
        store.drop_collection(name)
    manifest = {"format": MANIFEST_FORMAT, "schema_version": SCHEMA_VERSION, "description": "synthetic scale benchmark"}
    store.create_collection(name, manifest, dense_dim=dim, with_sparse=True, bm25_k1=1.2, bm25_b=0.75)
    insert_s = generate_s = 0.0
    last = time.perf_counter()
    for start in range(0, n, batch):
        t0 = time.perf_counter()
        rows = corpus.rows(start, min(batch, n - start))
        t1 = time.perf_counter()
        store.upsert(name, rows)
        t2 = time.perf_counter()
        generate_s += t1 - t0
        insert_s += t2 - t1
        if t2 - last > 30:
            last = t2
            log(f"[scale] n={n}: {start + len(rows)} rows, {(start + len(rows)) / insert_s:.0f} rows/s")
    # Seal the inserted data (what a deployment settles into after a bulk load)
    # so every size is searched in the same state, not partly as a growing segment.
    t0 = time.perf_counter()
    with store._lock:
        store.client.flush(name)
    flush_s = time.perf_counter() - t0
    sample = corpus.queries(queries)
    t0 = time.perf_counter()
    store.search(name, "dense", [sample[0]["dense"]], limit=depth)
    first_query_ms = (time.perf_counter() - t0) * 1000
    count = store.count(name)
    for q in sample[:3]:  # warm-up
        for path in ("bm25", "sparse", "dense"):
            store.search(name, path, [q[path]], limit=depth)
    timings: dict[str, list[float]] = {"bm25": [], "sparse": [], "dense": [], "hybrid": []}
    fusion = FusionConfig()
    for q in sample:
        for path in ("bm25", "sparse", "dense"):
            t0 = time.perf_counter()
            store.search(name, path, [q[path]], limit=depth)
            timings[path].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        ranked = {
            path: [(row["id"], score) for row, score in store.search(name, path, [q[path]], limit=depth)[0]]
            for path in ("bm25", "sparse", "dense")
        }
        fuse(ranked, fusion)
        timings["hybrid"].append((time.perf_counter() - t0) * 1000)
    memory_after = _memory_mib()
    disk = None if store_uri else _disk_mib(folder)
    store.drop_collection(name) if store_uri else None
    store.close()
    result = {
        "n": n,
        "rows": count,
        "insert_seconds": insert_s,
        "insert_rows_per_s": n / insert_s,
        "generate_seconds": generate_s,
        "flush_seconds": flush_s,
        "first_query_ms": first_query_ms,
        "latency_ms": latency_summary(timings),
        "memory_mib": memory_after,
        "memory_before_mib": memory_before,
        "disk_mib": disk,
    }
    log(
        f"[scale] n={n}: {result['insert_rows_per_s']:.0f} rows/s, hybrid p50 {result['latency_ms']['hybrid']['p50']:.1f} ms, "
        f"memory {fmt(memory_after, 0)} MiB, disk {fmt(disk, 0)} MiB"
    )
    return result


def _growth(points: Sequence[dict[str, Any]], get: Callable[[dict[str, Any]], float | None]) -> float | None:
    """Exponent e in value ~ n^e between the smallest and largest size."""
    if len(points) < 2:
        return None
    a, b = points[0], points[-1]
    va, vb = get(a), get(b)
    if not va or not vb or va <= 0 or vb <= 0:
        return None
    return float(np.log(vb / va) / np.log(b["n"] / a["n"]))


def run_scale(
    sizes: Sequence[int],
    *,
    out_dir: Path,
    work_dir: Path = Path("runs/scale"),
    store_uri: str | None = None,
    dim: int = 384,
    queries: int = 100,
    depth: int = 100,
    keep: bool = False,
    corpus_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = _log_default,
) -> dict[str, Any]:
    points = []
    for n in sorted(sizes):
        points.append(
            measure_size(
                n,
                work_dir=work_dir,
                store_uri=store_uri,
                dim=dim,
                queries=queries,
                depth=depth,
                corpus_options=corpus_options,
                log=log,
            )
        )
        if not keep and store_uri is None:
            shutil.rmtree(work_dir / f"n{n}", ignore_errors=True)
    growth = {
        "insert_rows_per_s": _growth(points, lambda p: p["insert_rows_per_s"]),
        **{
            f"{path}_p50_ms": _growth(points, lambda p, path=path: p["latency_ms"][path]["p50"])
            for path in ("bm25", "sparse", "dense", "hybrid")
        },
        "memory_mib": _growth(points, lambda p: p["memory_mib"]),
        "disk_mib": _growth(points, lambda p: p["disk_mib"]),
    }
    opts = dict(corpus_options or {})
    data = {
        "benchmark": "scale",
        "store": store_uri or "milvus-lite (embedded, FLAT dense index)",
        "dim": dim,
        "depth": depth,
        "queries_per_size": queries,
        "corpus": {
            "vocab": opts.get("vocab", 50000),
            "zipf": opts.get("zipf", 1.1),
            "doc_terms": opts.get("doc_terms", 120),
            "sparse_nnz": opts.get("sparse_nnz", 64),
        },
        "points": points,
        "growth_exponent": growth,
        "environment": environment(),
        "pid": os.getpid(),
    }
    write_json(Path(out_dir) / "scale.json", data)
    write_text(Path(out_dir) / "scale.md", scale_markdown(data))
    plot_scale(data, Path(out_dir) / "scale.png")
    return data


def scale_markdown(data: Mapping[str, Any]) -> str:
    rows = []
    for p in data["points"]:
        lat = p["latency_ms"]
        rows.append(
            [
                f"{p['n']:,}",
                f"{p['insert_rows_per_s']:.0f}",
                *[f"{lat[s]['p50']:.1f} / {lat[s]['p95']:.1f}" for s in ("bm25", "sparse", "dense", "hybrid")],
                fmt(p["first_query_ms"], 0),
                fmt(p["memory_mib"], 0),
                fmt(p["disk_mib"], 0),
            ]
        )
    g = data["growth_exponent"]
    growth_row = [
        "growth exponent (value ~ n^e)",
        fmt(g["insert_rows_per_s"], 2),
        *[fmt(g[f"{s}_p50_ms"], 2) for s in ("bm25", "sparse", "dense", "hybrid")],
        "",
        fmt(g["memory_mib"], 2),
        fmt(g["disk_mib"], 2),
    ]
    c = data["corpus"]
    env = data["environment"]
    return "\n".join(
        [
            f"# Scale: synthetic corpora on {data['store']}",
            "",
            f"Dense {data['dim']}-d Gaussian vectors; sparse {c['sparse_nnz']} Zipf term ids per row; text of ~{c['doc_terms']} words "
            f"from a {c['vocab']:,}-word Zipf({c['zipf']}) vocabulary. {data['queries_per_size']} queries per size, top {data['depth']} per path; "
            "hybrid = three path searches + RRF (what Engine.search does after encoding). Inserts are flushed (sealed) "
            "before querying; insert rate counts the upserts only (the flush is timed apart in the JSON).",
            "",
            markdown_table(
                [
                    "rows",
                    "insert rows/s",
                    "bm25 p50/p95 ms",
                    "sparse p50/p95 ms",
                    "dense p50/p95 ms",
                    "hybrid p50/p95 ms",
                    "first query ms",
                    "memory MiB",
                    "disk MiB",
                ],
                rows + [growth_row],
            ),
            "",
            "Memory: resident set of the benchmark process plus the Milvus Lite server it runs (after inserting and querying).",
            "",
            f"Machine: {machine_line(env)}. Git: {env['git_revision']}.",
            "",
            f"Command: `{env['command']}`",
        ]
    )


def plot_scale(data: Mapping[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = data["points"]
    ns = [p["n"] for p in points]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for s in ("bm25", "sparse", "dense", "hybrid"):
        axes[0].plot(ns, [p["latency_ms"][s]["p50"] for p in points], marker="o", label=f"{s} p50")
        axes[0].plot(ns, [p["latency_ms"][s]["p95"] for p in points], marker="x", linestyle=":", alpha=0.6, label=f"{s} p95")
    axes[0].set_ylabel("query latency (ms)")
    axes[0].legend(fontsize=7)
    axes[1].plot(ns, [p["insert_rows_per_s"] for p in points], marker="o")
    axes[1].set_ylabel("insert rows/s")
    axes[2].plot(ns, [p["memory_mib"] or 0 for p in points], marker="o", label="memory (RSS)")
    if all(p["disk_mib"] is not None for p in points):
        axes[2].plot(ns, [p["disk_mib"] for p in points], marker="s", label="disk")
    axes[2].set_ylabel("MiB")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("rows")
        ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    fig.suptitle(f"Scale on {data['store']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
