"""Ingest throughput: the whole pipeline against the bare encoders, in one run.

``python -m benchmarks ingest-throughput --docs ../shared/datasets/scifact
--max-docs 60 --dense-model ~/.cache/hybrid-search-models/all-MiniLM-L6-v2
--sparse-model ~/.cache/hybrid-search-models/splade-tiny
[--conditions sequential,overlapped] [--repeats N] [--max-chunks N] [--include GLOB]
--out benchmarks/results/ingest_throughput.json``

1. ``--docs`` is a folder of documents, or a record corpus (a BEIR folder or a
   .jsonl file; ``--max-docs`` keeps its first N records, written as a BEIR
   folder that the pipeline indexes as a user would). The selected files are
   read and chunked once, exactly as the pipeline does (same readers, chunking
   settings and token counter), to get the texts the encoders will see.
   ``--max-chunks`` keeps whole files, in path order, while their chunks fit.
2. The bare encoders (``EncoderSet.encode_documents``) are timed on exactly
   those texts, in the same order and the same batches as the pipeline sends them.
3. The whole pipeline (``indexers.pipeline.ingest``: hashing, reading,
   chunking, encoding, BM25 analysis, Milvus writes) is timed on the same files
   into a fresh Milvus Lite collection, once per condition: ``sequential``
   (reading, encoding and writing one after another) and ``overlapped``
   (side by side, the default; ``IngestConfig.overlap``).
4. Encoder and pipeline passes alternate (E S E O E, the conditions swapping
   places on each of ``--repeats``), so that a change in the load of a shared
   machine hits both sides alike; the ratios use the means.

Reported: docs/s and chunks/s of each and the ratio pipeline / encoders per
condition, from wall time and from CPU seconds (this process plus Milvus Lite's
server: steadier on a shared machine, but blind to overlap), the share of the
pipeline's wall time outside the encode step, overlapped over sequential, and
the pipeline's seconds per stage. Written as JSON and as Markdown next to it,
with the machine, its load and the package versions. ``--profile FILE`` saves
a cProfile of the first pipeline pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
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


def _time_encoder(encoders: Any, texts: list[str], batch_size: int, keep: dict[tuple[str, ...], Any] | None = None) -> float:
    """Seconds to encode ``texts`` in batches; ``keep`` receives each batch's vectors."""
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        vectors = encoders.encode_documents(batch)
        if keep is not None:
            keep[tuple(batch)] = vectors
    return time.perf_counter() - started


#: The pipeline one thing at a time, and with its stages side by side.
CONDITIONS = ("sequential", "overlapped")
#: The same with the encoders' vectors of the first encoder pass handed back
#: instead of encoding again: what the rest of the pipeline (reading,
#: chunking, BM25 analysis, Milvus writes) can sustain, i.e. the most a fast
#: encoder (a GPU) can get out of it on this machine.
PRECOMPUTED = ("sequential-precomputed", "overlapped-precomputed")


def _record_corpus(docs: Path) -> Path | None:
    """The JSONL file of a record corpus named by ``--docs`` (a BEIR folder or a
    .jsonl file), else ``None`` (a folder of documents)."""
    if docs.is_file() and docs.suffix == ".jsonl":
        return docs
    if docs.is_dir() and (docs / "corpus.jsonl").is_file():
        return docs / "corpus.jsonl"
    return None


def _subset(corpus: Path, max_docs: int | None, folder: Path) -> Path:
    """A BEIR-layout folder holding the first ``max_docs`` records of ``corpus``
    (all of them when ``None``), indexed as a user indexes a BEIR folder."""
    folder.mkdir(parents=True)
    lines: list[str] = []
    with corpus.open(encoding="utf-8") as source:
        for line in source:
            if line.strip():
                lines.append(line if line.endswith("\n") else line + "\n")
                if max_docs is not None and len(lines) >= max_docs:
                    break
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return folder


def run(
    docs: Path,
    *,
    dense_model: str | None,
    dense_kind: str = "sentence-transformers",
    sparse_model: str | None = None,
    sparse_kind: str = "splade",
    include: tuple[str, ...] = ("*",),
    max_chunks: int | None = None,
    max_docs: int | None = None,
    batch_size: int = 64,
    encoder_batch_size: int = 32,
    max_tokens: int = 256,
    device: str = "cpu",
    profile: Path | None = None,
    repeats: int = 1,
    conditions: tuple[str, ...] = CONDITIONS,
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
    corpus = _record_corpus(docs)
    if corpus is None and not docs.is_dir():
        raise SystemExit(f"--docs {docs}: no such folder, BEIR folder or .jsonl file")
    if corpus is None and max_docs is not None:
        raise SystemExit("--max-docs applies to a record corpus (a BEIR folder or a .jsonl file); use --max-chunks for a folder")
    if dense_model is None and sparse_model is None:
        raise SystemExit("name a --dense-model and/or a --sparse-model")
    unknown = [c for c in conditions if c not in CONDITIONS + PRECOMPUTED]
    if unknown or not conditions:
        raise SystemExit(f"--conditions: choose from {', '.join(CONDITIONS + PRECOMPUTED)}; got {', '.join(conditions) or 'none'}")
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
        source_root = docs if corpus is None else _subset(corpus, max_docs, work / "subset" / docs.name.removesuffix(".jsonl"))

        # (a) read and chunk once: the texts the encoder will see, per file.
        _log("reading and chunking the documents once")
        t0 = time.perf_counter()
        files = find_files(source_root, config.selection)
        texts_by_file: dict[Path, list[str]] = {}
        docs_by_file: dict[Path, int] = {}
        for path in files:
            result = read_file(path, config.read, root=source_root)
            texts: list[str] = []
            for doc in result.documents:
                texts.extend(c.text_for_encoding for c in chunk_document(doc, config.chunking, count_tokens))
            texts_by_file[path] = texts
            docs_by_file[path] = len(result.documents)
        prepare_seconds = time.perf_counter() - t0
        chosen = _select(files, {p: len(t) for p, t in texts_by_file.items()}, max_chunks)
        texts = [t for p in chosen for t in texts_by_file[p]]
        documents = sum(docs_by_file[p] for p in chosen)
        sources = [p.relative_to(source_root).as_posix() for p in chosen]
        _log(f"{len(texts)} chunks of {documents} documents from {len(chosen)} files: {', '.join(sources)} ({prepare_seconds:.1f}s)")

        # The pipeline reads the chosen files as one folder (one ingest root,
        # so its batches span files), through links to the originals.
        tree = work / "tree" / source_root.name
        for p in chosen:
            link = tree / p.relative_to(source_root)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(p.resolve())

        _log("warming the encoder up")
        encoders.encode_documents(texts[: min(len(texts), batch_size)])

        # Encoder and pipeline passes alternate (E P E P E ...), so that a
        # change in the load of a shared machine hits both sides alike; the
        # conditions swap places from one repeat to the next.
        load_before = _load()
        encoder_passes: list[dict[str, float]] = []
        pipeline_passes: list[dict[str, Any]] = []
        timeline: list[str] = []  # "encoders" or the condition, pass after pass
        vectors: dict[tuple[str, ...], Any] = {}
        misses: list[int] = []

        def encoder_pass() -> None:
            _log(f"timing the bare encoders (pass {len(encoder_passes) + 1})")
            cpu = _cpu_seconds()
            keep = vectors if not encoder_passes and set(PRECOMPUTED) & set(conditions) else None
            wall = _time_encoder(encoders, texts, batch_size, keep)
            encoder_passes.append({"seconds": wall, "cpu_seconds": _cpu_seconds() - cpu})
            timeline.append("encoders")
            _log(f"encoders: {len(texts) / wall:.2f} chunks/s, {documents / wall:.2f} docs/s")

        def precomputed(collection_encoders: Any) -> Any:
            encode = collection_encoders.encode_documents

            def encode_documents(batch: Any) -> Any:
                found = vectors.get(tuple(batch))
                if found is None:
                    misses.append(len(batch))
                    return encode(batch)
                return found

            return encode_documents

        def pipeline_pass(condition: str) -> None:
            number = len(pipeline_passes)
            _log(f"timing the whole pipeline, {condition} (pass {number + 1})")
            collection = f"ingest_bench_{number}"
            engine.create_collection(replace(engine.open_collection("ingest_bench"), name=collection))
            profiler = None
            if profile is not None and number == 0:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            collection_encoders = engine.encoders(collection)
            if condition in PRECOMPUTED:
                collection_encoders.encode_documents = precomputed(collection_encoders)
            cpu = _cpu_seconds()
            t0 = time.perf_counter()
            try:
                summary = ingest(engine, collection, [tree], replace(config, overlap=condition.startswith("overlapped")))
            finally:
                collection_encoders.__dict__.pop("encode_documents", None)
            wall = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(profile))
                _log(f"profile of the first pipeline pass written to {profile}")
            _log(f"pipeline, {condition}: {summary.chunks_written / wall:.2f} chunks/s, {documents / wall:.2f} docs/s")
            if summary.chunks_written != len(texts) or summary.skipped:
                _log(
                    f"warning: the pipeline wrote {summary.chunks_written} chunks (the encoder pass had {len(texts)}); skipped {summary.skipped}"
                )
            pipeline_passes.append(
                {
                    "condition": condition,
                    "seconds": wall,
                    "cpu_seconds": cpu,
                    "chunks_written": summary.chunks_written,
                    "chunks_stored": engine.store.count(collection),
                    "documents_written": summary.documents_written,
                    "files_indexed": summary.files_indexed,
                    "skipped": [f"{s.source}: {s.reason}" for s in summary.skipped],
                    # Seconds per stage; with overlap the stages run side by
                    # side, so they add up to more than the wall time.
                    "stage_seconds": dict(summary.stage_seconds),
                    "seconds_outside_encode": wall - summary.stage_seconds.get("encode", 0.0),
                }
            )
            timeline.append(condition)
            engine.drop_collection(collection)

        encoder_pass()
        for repeat in range(repeats):
            for condition in conditions if repeat % 2 == 0 else tuple(reversed(conditions)):
                pipeline_pass(condition)
                if condition not in PRECOMPUTED:
                    encoder_pass()
        load_after = _load()
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(texts)
    encoder_seconds = statistics.mean(e["seconds"] for e in encoder_passes)
    encoder_cpu = statistics.mean(e["cpu_seconds"] for e in encoder_passes)
    by_condition: dict[str, Any] = {}
    for condition in conditions:
        passes = [q for q in pipeline_passes if q["condition"] == condition]
        seconds = statistics.mean(q["seconds"] for q in passes)
        by_condition[condition] = {
            "seconds_mean": seconds,
            "chunks_per_s": n / seconds,
            "docs_per_s": documents / seconds,
            # docs/s (equally chunks/s) of the pipeline over those of the bare
            # encoders, from wall time, and from CPU seconds (this process and
            # Milvus Lite's server: steadier on a shared machine, blind to overlap)
            "ratio_to_encoders": encoder_seconds / seconds,
            "ratio_to_encoders_cpu": encoder_cpu / statistics.mean(q["cpu_seconds"] for q in passes),
            # the share of the pipeline's wall time outside the encode step
            "share_outside_encode": statistics.mean(q["seconds_outside_encode"] for q in passes) / seconds,
        }
    environment = report_environment()
    result = {
        "benchmark": "ingest_throughput",
        "command": environment["command"],
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
            "max_docs": max_docs,
            "device": device,
            "reader_threads": config.reader_threads,
            "repeats": repeats,
            "conditions": list(conditions),
        },
        "chunks": n,
        "documents": documents,
        "encoders": {
            "passes": encoder_passes,
            "seconds_mean": encoder_seconds,
            "chunks_per_s": n / encoder_seconds,
            "docs_per_s": documents / encoder_seconds,
        },
        "pipeline": {"passes": pipeline_passes, **by_condition},
        "timeline": timeline,
    }
    for sequential, overlapped in (CONDITIONS, PRECOMPUTED):
        if sequential in by_condition and overlapped in by_condition:
            result[f"{overlapped}_over_{sequential}"] = by_condition[sequential]["seconds_mean"] / by_condition[overlapped]["seconds_mean"]
    if misses:
        result["precomputed_misses"] = sum(misses)  # chunks encoded again: the batches differed
    return result


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    enc, pipe = result["encoders"], result["pipeline"]
    s = result["settings"]
    n, docs = result["chunks"], result["documents"]
    models = ", ".join(
        x
        for x in (
            f"dense {s['dense_model']} ({s['dense_kind']})" if s["dense_model"] else "",
            f"sparse {s['sparse_model']} ({s['sparse_kind']})" if s["sparse_model"] else "",
        )
        if x
    )
    rows = []
    encoder_passes, pipeline_passes = iter(enc["passes"]), iter(pipe["passes"])
    # Older results have no timeline: E P E P ... E.
    timeline = result.get("timeline") or ["encoders"] + [x for q in pipe["passes"] for x in (q["condition"], "encoders")]
    for kind in timeline:
        p = next(encoder_passes) if kind == "encoders" else next(pipeline_passes)
        label = "bare encoders" if kind == "encoders" else f"pipeline, {kind}"
        rows.append(f"| {label} | {p['seconds']:.1f} | {p['cpu_seconds']:.1f} | {docs / p['seconds']:.2f} | {n / p['seconds']:.2f} |")
    conditions = [c for c in CONDITIONS + PRECOMPUTED if c in pipe]
    summary = [
        f"| {c} | {pipe[c]['docs_per_s']:.2f} | {enc['docs_per_s']:.2f} | **{pipe[c]['ratio_to_encoders']:.2f}** | "
        f"{pipe[c]['ratio_to_encoders_cpu']:.2f} | {100 * pipe[c]['share_outside_encode']:.1f}% |"
        for c in conditions
    ]
    lines = [
        "# Ingest throughput: the whole pipeline vs the bare encoders",
        "",
        f"`{result['command']}`",
        "",
        (
            f"{docs} documents, {n} chunks from {len(s['files'])} files ({', '.join(s['files'])}) of {s['docs']}; {models}; "
            f"batch {s['batch_size']} chunks (encoder mini-batch {s['encoder_batch_size']}), max {s['max_tokens']} tokens, device {s['device']}. "
            "The bare encoders encode exactly the pipeline's chunk texts in the same batches; passes alternate."
        ),
        "",
        "| pass | wall s | CPU s | docs/s | chunks/s |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "| pipeline | docs/s | bare encoders docs/s | pipeline / encoders | from CPU s | wall time outside the encode step |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *summary,
        "",
    ]
    if "overlapped_over_sequential" in result:
        lines += [f"Overlapped over sequential pipeline, docs/s: **{result['overlapped_over_sequential']:.2f}x**.", ""]
    if set(PRECOMPUTED) & set(conditions):
        lines += [
            "The `-precomputed` conditions hand the pipeline the vectors of the first encoder pass instead of encoding "
            "again (same texts, same batches): their docs/s are what the rest of the pipeline (reading, chunking, BM25 "
            "analysis, row building, Milvus writes) sustains on this machine, the most an encoder as fast as a GPU could "
            "get out of it; their ratio is that ceiling over the bare encoders here."
            + (f" Overlapped over sequential there: **{result['overlapped-precomputed_over_sequential-precomputed']:.2f}x**." if "overlapped-precomputed_over_sequential-precomputed" in result else "")
            + (f" ({result['precomputed_misses']} chunks had no precomputed vectors and were encoded.)" if result.get("precomputed_misses") else ""),
            "",
        ]
    lines += [
        (
            "Pipeline stages, seconds (first pass of each condition; `read` and `chunk` run on reader threads, and with overlap "
            "`encode` (with the BM25 analysis) and `write` run side by side, so stages add up to more than the wall time):"
        ),
        "",
        *(
            f"- {q['condition']}: " + ", ".join(f"{k} {v:.1f}" for k, v in q["stage_seconds"].items())
            for c in conditions
            for q in [next(p for p in pipe["passes"] if p["condition"] == c)]
        ),
        "",
        (
            f"Machine: {m['cpu']}, {m['cpu_usable']} usable CPUs of {m['cpu_count']}, torch threads {m['torch_threads']}, "
            f"GPU {m.get('gpu') or 'none'}, {m['platform']}, Python {m['python']}; load average before {result['load_average']['before']}, "
            f"after {result['load_average']['after']}."
        ),
        "",
        "Packages: "
        + ", ".join(f"{k} {v}" for k, v in result["packages"].items())
        + f"; git {result['git_revision']}; {result['date']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks ingest-throughput") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, required=True, help="folder of documents, or a record corpus: a BEIR folder or a .jsonl file (read, never modified)")
    parser.add_argument("--dense-model", help="dense model folder or hub name")
    parser.add_argument("--dense-kind", default="sentence-transformers", help="sentence-transformers or bge-m3")
    parser.add_argument("--sparse-model", help="learned sparse model folder or hub name")
    parser.add_argument("--sparse-kind", default="splade", help="splade or bge-m3")
    parser.add_argument("--include", action="append", help="gitignore-style glob of files to use (repeatable; default all)")
    parser.add_argument("--max-chunks", type=int, help="use whole files, in path order, up to this many chunks")
    parser.add_argument("--max-docs", type=int, help="a record corpus: use its first N records")
    parser.add_argument("--batch-size", type=int, default=64, help="chunks per encoder call (the pipeline's batch)")
    parser.add_argument("--encoder-batch-size", type=int, default=32, help="the encoder's own mini-batch")
    parser.add_argument("--max-tokens", type=int, default=256, help="chunk budget in tokens")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=1, help="passes of each pipeline condition, each followed by an encoder pass")
    parser.add_argument(
        "--conditions",
        default=",".join(CONDITIONS),
        help="pipeline conditions, comma-separated: sequential (reading, encoding, writing one after another), overlapped (side by side, the default); "
        "sequential-precomputed, overlapped-precomputed (the first encoder pass's vectors handed back: the pipeline's own ceiling)",
    )
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
        max_docs=args.max_docs,
        batch_size=args.batch_size,
        encoder_batch_size=args.encoder_batch_size,
        max_tokens=args.max_tokens,
        device=args.device,
        profile=args.profile,
        repeats=args.repeats,
        conditions=tuple(c.strip() for c in args.conditions.split(",") if c.strip()),
    )
    result["command"] = " ".join([prog, *(shlex.quote(a) for a in argv)])
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    _log(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m benchmarks.ingest_throughput"))
