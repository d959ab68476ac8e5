"""Ingest throughput: the whole pipeline against the bare encoder, in one run.

``python -m benchmarks.ingest_throughput --docs ../shared/documents
--dense-model ~/.cache/hybrid-search-models/all-MiniLM-L6-v2
[--sparse-model DIR --sparse-kind splade] [--max-chunks N] [--include GLOB]
--out benchmarks/results/ingest_throughput.json``

1. The selected files are read and chunked once, exactly as the pipeline does
   (same readers, chunking settings and token counter), to get the texts the
   encoder will see. ``--max-chunks`` keeps whole files, in path order, while
   their chunks fit the limit (a subset that runs in a few minutes).
2. The bare encoder (``EncoderSet.encode_documents``) is timed on exactly those
   texts, in the same order and the same batches as the pipeline sends them.
3. The whole pipeline (``indexers.pipeline.ingest``: hashing, reading,
   chunking, encoding, BM25 analysis, Milvus writes) is timed on the same files
   into a fresh Milvus Lite collection.
4. Encoder and pipeline passes alternate (E P E, or E P E P E with
   ``--repeats 2``), so that a change in the load of a shared machine hits both
   sides alike; the ratio uses the means.

Reported: chunks/s of each and the ratio pipeline / encoder, from wall time and
from CPU seconds (this process plus Milvus Lite's server: steadier on a shared
machine), the share of the pipeline's wall time spent outside the encoder
call, and the pipeline's seconds per stage (``read`` and ``chunk`` run on
worker threads alongside the encoder: their seconds are thread time, not wall
time). Written as JSON and as Markdown next to it, with the machine, its load
and the package versions. ``--profile FILE`` saves a cProfile of the first
pipeline pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .report import environment as report_environment
from .report import package_version

__all__ = ["main", "run"]

PACKAGES = (
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "pymilvus",
    "milvus-lite",
    "pypdfium2",
    "python-docx",
    "lxml",
)


def _log(message: str) -> None:
    print(f"[ingest-throughput] {message}", file=sys.stderr, flush=True)


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _select(files: list[Path], counts: dict[Path, int], max_chunks: int | None) -> list[Path]:
    """Whole files, in path order, while their chunks fit ``max_chunks`` (at least one file)."""
    if max_chunks is None:
        return [f for f in files if counts.get(f)]
    chosen: list[Path] = []
    total = 0
    for f in files:
        n = counts.get(f, 0)
        if n and (total + n <= max_chunks or not chosen):
            chosen.append(f)
            total += n
    return chosen


def _cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and its children that are
    still running (Milvus Lite's server, which does the pipeline's writes)."""
    total = time.process_time()
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    except ImportError:
        pass
    return total


def _time_encoder(encoders: Any, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        encoders.encode_documents(texts[start : start + batch_size])
    return time.perf_counter() - started


def run(
    docs: Path,
    *,
    dense_model: str | None,
    dense_kind: str = "sentence-transformers",
    sparse_model: str | None = None,
    sparse_kind: str = "splade",
    include: tuple[str, ...] = ("*",),
    max_chunks: int | None = None,
    batch_size: int = 64,
    encoder_batch_size: int = 32,
    max_tokens: int = 256,
    device: str = "cpu",
    profile: Path | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    from hybrid_search import (
        CollectionConfig,
        DenseEncoderConfig,
        Engine,
        RuntimeConfig,
        SparseEncoderConfig,
        StoreConfig,
    )
    from indexers.chunks import ChunkingConfig, chunk_document
    from indexers.documents import read_file
    from indexers.files import FileSelection, find_files
    from indexers.pipeline import IngestConfig, ingest, token_counter_for

    docs = Path(docs).expanduser()
    if not docs.is_dir():
        raise SystemExit(f"--docs {docs}: no such folder")
    if dense_model is None and sparse_model is None:
        raise SystemExit("name a --dense-model and/or a --sparse-model")
    work = Path(tempfile.mkdtemp(prefix="ingest-throughput-"))
    try:
        _log(f"loading models; working in {work}")
        engine = Engine(
            StoreConfig(uri=str(work / "bench.db")), runtime=RuntimeConfig(device=device, batch_size=encoder_batch_size)
        )
        engine.create_collection(
            CollectionConfig(
                name="ingest_bench",
                dense=DenseEncoderConfig(model=os.path.expanduser(dense_model), kind=dense_kind) if dense_model else None,
                sparse=SparseEncoderConfig(model=os.path.expanduser(sparse_model), kind=sparse_kind) if sparse_model else None,
            )
        )
        encoders = engine.encoders("ingest_bench")
        count_tokens, _ = token_counter_for(encoders)
        config = IngestConfig(
            chunking=ChunkingConfig(max_tokens=max_tokens), selection=FileSelection(include=include), batch_size=batch_size
        )

        # (a) read and chunk once: the texts the encoder will see, per file.
        _log("reading and chunking the documents once")
        t0 = time.perf_counter()
        files = find_files(docs, config.selection)
        texts_by_file: dict[Path, list[str]] = {}
        for path in files:
            result = read_file(path, config.read, root=docs)
            texts: list[str] = []
            for doc in result.documents:
                texts.extend(c.text_for_encoding for c in chunk_document(doc, config.chunking, count_tokens))
            texts_by_file[path] = texts
        prepare_seconds = time.perf_counter() - t0
        chosen = _select(files, {p: len(t) for p, t in texts_by_file.items()}, max_chunks)
        texts = [t for p in chosen for t in texts_by_file[p]]
        sources = [p.relative_to(docs).as_posix() for p in chosen]
        _log(f"{len(texts)} chunks from {len(chosen)} files: {', '.join(sources)} ({prepare_seconds:.1f}s)")

        # The pipeline reads the chosen files as one folder (one ingest root,
        # so its batches span files), through links to the originals.
        tree = work / docs.name
        for p in chosen:
            link = tree / p.relative_to(docs)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(p.resolve())

        _log("warming the encoder up")
        encoders.encode_documents(texts[: min(len(texts), batch_size)])

        # Encoder and pipeline passes alternate (E P E ... P E), so that a
        # change in the load of a shared machine hits both sides alike.
        load_before = _load()
        encoder_passes: list[dict[str, float]] = []
        pipeline_passes: list[dict[str, Any]] = []

        def encoder_pass() -> None:
            _log(f"timing the bare encoder (pass {len(encoder_passes) + 1})")
            cpu = _cpu_seconds()
            wall = _time_encoder(encoders, texts, batch_size)
            encoder_passes.append({"seconds": wall, "cpu_seconds": _cpu_seconds() - cpu})
            _log(f"encoder: {len(texts) / wall:.1f} chunks/s")

        encoder_pass()
        for repeat in range(repeats):
            _log(f"timing the whole pipeline (pass {repeat + 1})")
            collection = f"ingest_bench_{repeat}"
            engine.create_collection(replace(engine.open_collection("ingest_bench"), name=collection))
            profiler = None
            if profile is not None and repeat == 0:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            cpu = _cpu_seconds()
            t0 = time.perf_counter()
            summary = ingest(engine, collection, [tree], config)
            wall = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(profile))
                _log(f"profile of the first pipeline pass written to {profile}")
            _log(f"pipeline: {summary.chunks_written / wall:.1f} chunks/s")
            if summary.chunks_written != len(texts) or summary.skipped:
                _log(
                    f"warning: the pipeline wrote {summary.chunks_written} chunks (the encoder pass had {len(texts)}); skipped {summary.skipped}"
                )
            pipeline_passes.append(
                {
                    "seconds": wall,
                    "cpu_seconds": cpu,
                    "chunks_written": summary.chunks_written,
                    "chunks_stored": engine.store.count(collection),
                    "files_indexed": summary.files_indexed,
                    "skipped": [f"{s.source}: {s.reason}" for s in summary.skipped],
                    "stage_seconds": dict(summary.stage_seconds),
                    # Wall time outside Engine.index's encode step (which
                    # holds the encoders plus the BM25 analysis): what the
                    # pipeline adds to the encoder.
                    "seconds_outside_encode": wall - summary.stage_seconds.get("encode", 0.0),
                }
            )
            encoder_pass()
        load_after = _load()
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(texts)
    encoder_seconds = sum(e["seconds"] for e in encoder_passes) / len(encoder_passes)
    pipeline_seconds = sum(q["seconds"] for q in pipeline_passes) / len(pipeline_passes)
    encoder_cpu = sum(e["cpu_seconds"] for e in encoder_passes) / len(encoder_passes)
    pipeline_cpu = sum(q["cpu_seconds"] for q in pipeline_passes) / len(pipeline_passes)
    outside = sum(q["seconds_outside_encode"] for q in pipeline_passes) / len(pipeline_passes)
    environment = report_environment()
    return {
        "benchmark": "ingest_throughput",
        "command": " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks.ingest_throughput", *sys.argv[1:]]),
        "git_revision": environment["git_revision"],
        "date": environment["date"],
        "machine": environment["machine"],
        "load_average": {"before": load_before, "after": load_after},
        "packages": {name: package_version(name) for name in PACKAGES},
        "settings": {
            "docs": str(docs),
            "files": sources,
            "dense_model": dense_model,
            "dense_kind": dense_kind if dense_model else None,
            "sparse_model": sparse_model,
            "sparse_kind": sparse_kind if sparse_model else None,
            "batch_size": batch_size,
            "encoder_batch_size": encoder_batch_size,
            "max_tokens": max_tokens,
            "max_chunks": max_chunks,
            "device": device,
            "reader_threads": config.reader_threads,
            "repeats": repeats,
        },
        "chunks": n,
        "encoder": {"passes": encoder_passes, "seconds_mean": encoder_seconds, "chunks_per_s": n / encoder_seconds},
        "pipeline": {"passes": pipeline_passes, "seconds_mean": pipeline_seconds, "chunks_per_s": n / pipeline_seconds},
        # chunks/s of the pipeline over chunks/s of the bare encoder (wall clock)
        "ratio_pipeline_to_encoder": encoder_seconds / pipeline_seconds,
        # the same from CPU seconds (this process and Milvus Lite's server):
        # steadier than wall time on a machine shared with other work
        "ratio_pipeline_to_encoder_cpu": encoder_cpu / pipeline_cpu,
        # the share of the pipeline's wall time spent outside the encoder call
        "pipeline_share_outside_encode": outside / pipeline_seconds,
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    enc, pipe = result["encoder"], result["pipeline"]
    s = result["settings"]
    n = result["chunks"]
    models = ", ".join(
        x
        for x in (
            f"dense {s['dense_model']} ({s['dense_kind']})" if s["dense_model"] else "",
            f"sparse {s['sparse_model']} ({s['sparse_kind']})" if s["sparse_model"] else "",
        )
        if x
    )
    rows = []
    for i, e in enumerate(enc["passes"]):
        rows.append(f"| bare encoder, pass {i + 1} | {e['seconds']:.1f} | {e['cpu_seconds']:.1f} | {n / e['seconds']:.2f} |")
        if i < len(pipe["passes"]):
            q = pipe["passes"][i]
            rows.append(
                f"| whole pipeline, pass {i + 1} | {q['seconds']:.1f} | {q['cpu_seconds']:.1f} | {n / q['seconds']:.2f} |"
            )
    stages = pipe["passes"][0]["stage_seconds"]
    lines = [
        "# Ingest throughput: pipeline vs bare encoder",
        "",
        f"`{result['command']}`",
        "",
        f"{n} chunks from {len(s['files'])} files ({', '.join(s['files'])}); {models}; "
        f"batch {s['batch_size']} chunks (encoder mini-batch {s['encoder_batch_size']}), max {s['max_tokens']} tokens, device {s['device']}.",
        "",
        "| pass | wall s | CPU s | chunks/s |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        "",
        f"**Ratio pipeline / encoder, chunks/s: {result['ratio_pipeline_to_encoder']:.2f}** (means of the passes; "
        f"from CPU seconds: {result['ratio_pipeline_to_encoder_cpu']:.2f}). "
        f"Share of the pipeline's wall time outside the encoder call: {100 * result['pipeline_share_outside_encode']:.1f}%.",
        "",
        "Pipeline stages, first pass (seconds; `read` and `chunk` run on worker threads alongside the encoder, "
        "`encode` includes the BM25 analysis): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()),
        "",
        f"Machine: {m['cpu']}, {m['cpu_usable']} usable CPUs of {m['cpu_count']}, torch threads {m['torch_threads']}, "
        f"{m['platform']}, Python {m['python']}; load average before {result['load_average']['before']}, after {result['load_average']['after']}.",
        "",
        "Packages: "
        + ", ".join(f"{k} {v}" for k, v in result["packages"].items())
        + f"; git {result['git_revision']}; {result['date']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, required=True, help="folder of documents (read, never modified)")
    parser.add_argument("--dense-model", help="dense model folder or hub name")
    parser.add_argument("--dense-kind", default="sentence-transformers", help="sentence-transformers or bge-m3")
    parser.add_argument("--sparse-model", help="learned sparse model folder or hub name")
    parser.add_argument("--sparse-kind", default="splade", help="splade or bge-m3")
    parser.add_argument("--include", action="append", help="gitignore-style glob of files to use (repeatable; default all)")
    parser.add_argument("--max-chunks", type=int, help="use whole files, in path order, up to this many chunks")
    parser.add_argument("--batch-size", type=int, default=64, help="chunks per encoder call (the pipeline's batch)")
    parser.add_argument("--encoder-batch-size", type=int, default=32, help="the encoder's own mini-batch")
    parser.add_argument("--max-tokens", type=int, default=256, help="chunk budget in tokens")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=1, help="pipeline passes, each between two encoder passes")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the first pipeline pass (main thread) here")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ingest_throughput.json"))
    args = parser.parse_args(argv)

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    result = run(
        args.docs,
        dense_model=args.dense_model,
        dense_kind=args.dense_kind,
        sparse_model=args.sparse_model,
        sparse_kind=args.sparse_kind,
        include=tuple(args.include or ("*",)),
        max_chunks=args.max_chunks,
        batch_size=args.batch_size,
        encoder_batch_size=args.encoder_batch_size,
        max_tokens=args.max_tokens,
        device=args.device,
        profile=args.profile,
        repeats=args.repeats,
    )
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    _log(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
