"""``python -m benchmarks load --compare-upload KIB``: search latency while a
large document is uploaded.

One server, one collection: after the initial documents are indexed, the read
clients run twice, first alone for ``--duration`` seconds, then while a
one-line plain-text file of KIB KiB (no line or sentence breaks: the chunker's
worst case) is uploaded through ``POST /v1/collections/{name}/documents/upload``,
the route users use. The second phase lasts until the upload's job has
finished, so every request in it competed with the upload. Afterwards the job
must have succeeded and every chunk of the uploaded document must be found by
a search restricted to that document. Reports search p50/p99, QPS and errors of
both phases and the p99 ratio (the promise: within 2x of the run without it).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["P99_LIMIT", "one_line_text", "upload_comparison", "upload_markdown", "upload_run", "vocabulary_of"]

#: The search p99 under an upload may be at most this multiple of the p99 without.
P99_LIMIT = 2.0
UPLOAD_NAME = "large-one-line.txt"
_WORD = re.compile(r"[a-z]{3,}")


def one_line_text(vocabulary: list[str], size_bytes: int, seed: int) -> str:
    """Exactly ``size_bytes`` of ASCII words separated by single spaces: no
    newline, no sentence punctuation, so nothing but length splits it.
    Words are drawn at random so every chunk's opening words are distinctive."""
    if size_bytes < 1:
        raise ValueError("size_bytes must be >= 1")
    words = sorted({w for w in vocabulary if w.isascii() and w.isalpha()})
    if not words:
        raise ValueError("the vocabulary has no ASCII words")
    rng = random.Random(seed)
    parts: list[str] = []
    length = 0
    while length < size_bytes:
        word = rng.choice(words)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:size_bytes].rstrip(" ").ljust(size_bytes, "x")


def _search_phase(summary: dict[str, Any]) -> dict[str, Any]:
    search = summary["endpoints"].get("search", {})
    return {
        "seconds": summary["elapsed_s"],
        "search_requests": search.get("requests", 0),
        "search_errors": search.get("errors", 0),
        "search_qps": search.get("qps", 0.0),
        "search_p50_ms": search.get("p50_ms"),
        "search_p99_ms": search.get("p99_ms"),
        "errors_all_endpoints": summary["errors"],
    }


def upload_comparison(without: dict[str, Any], during: dict[str, Any], upload: dict[str, Any]) -> dict[str, Any]:
    """Both phases' search figures, the p99 ratio and the verdicts.

    ``ok``: no request failed in either phase, the upload's job succeeded and
    every chunk it wrote was found. ``p99_within_limit``: the promise itself."""
    before, under = _search_phase(without), _search_phase(during)
    p99_before, p99_under = before["search_p99_ms"], under["search_p99_ms"]
    ratio = p99_under / p99_before if p99_before and p99_under is not None else None
    return {
        "without_upload": before,
        "during_upload": under,
        "search_p99_ratio": ratio,
        "p99_limit": P99_LIMIT,
        "p99_within_limit": ratio is not None and ratio <= P99_LIMIT,
        "ok": before["errors_all_endpoints"] == 0
        and under["errors_all_endpoints"] == 0
        and upload["job_state"] == "succeeded"
        and upload["chunks_stored"] > 0
        and upload["chunks_found"] == upload["chunks_stored"],
    }


async def _upload_phase(client: Any, collection: str, text: str, readers: Any, stop: asyncio.Event, cap_s: float) -> dict[str, Any]:
    """Upload ``text`` as a file, follow its job, and stop the readers when it ends."""
    started = time.perf_counter()
    try:
        response = await client.post(
            f"/v1/collections/{collection}/documents/upload",
            files={"files": (UPLOAD_NAME, text.encode("ascii"), "text/plain")},
            timeout=120,
        )
        if response.status_code != 202:
            return {"job_state": f"upload refused: {response.status_code} {response.text[:300]}", "seconds": time.perf_counter() - started}
        job_id = response.json()["id"]
        deadline = time.monotonic() + cap_s
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = (await client.get(f"/v1/jobs/{job_id}")).json()
            if body["state"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.5)
        state = body.get("state", "unknown")
        if state == "failed":
            state = f"failed: {body.get('error')}"
        elif state != "succeeded":
            state = f"unfinished after {cap_s:.0f} s ({state})"
        return {"job_id": job_id, "job_state": state, "seconds": time.perf_counter() - started}
    finally:
        stop.set()
        await readers


async def _find_chunks(client: Any, collection: str, doc_id: str, concurrency: int = 4) -> dict[str, Any]:
    """Every chunk of the uploaded document: found by a search for its opening
    words restricted to the document (top 3: neighbouring chunks overlap)."""
    got = await client.get(f"/v1/collections/{collection}/documents/{quote(doc_id, safe='')}", timeout=120)
    chunks = got.json()["chunks"] if got.status_code == 200 else []
    missing: list[str] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def check(chunk: dict[str, Any]) -> None:
        async with semaphore:
            query = " ".join(chunk["text"].split()[:24])
            found = await client.post(
                f"/v1/collections/{collection}/search",
                json={"query": query, "k": 3, "filters": [{"field": "doc_id", "op": "==", "value": doc_id}]},
                timeout=120,
            )
            hits = found.json().get("hits", []) if found.status_code == 200 else []
            if chunk["chunk_id"] not in {h["chunk_id"] for h in hits}:
                missing.append(chunk["chunk_id"])

    await asyncio.gather(*(check(c) for c in chunks))
    return {"chunks_stored": len(chunks), "chunks_found": len(chunks) - len(missing), "chunks_missing": sorted(missing)[:20]}


async def upload_run(
    client: Any, config: Any, reader: Any, recorder_type: Any, queries: list[str], doc_ids: list[str], vocabulary: list[str], log: Any
) -> dict[str, Any]:
    """Phase 1: readers alone; phase 2: readers while the large file is uploaded."""
    from .load import COLLECTION

    text = one_line_text(vocabulary, config.compare_upload_kib * 1024, config.seed)

    async def readers(recorder: Any, deadline: float, stop: asyncio.Event | None) -> None:
        await asyncio.gather(
            *(reader(client, random.Random(config.seed + i), config, deadline, recorder, queries, doc_ids, stop) for i in range(config.clients))
        )

    log(f"phase 1: {config.clients} clients for {config.duration_s:.0f} s, no upload ...")
    without = recorder_type()
    started = time.monotonic()
    await readers(without, started + config.duration_s, None)
    without_summary = without.summary(time.monotonic() - started)

    log(f"phase 2: the same clients while a {config.compare_upload_kib} KiB one-line file is uploaded ...")
    during = recorder_type()
    stop = asyncio.Event()
    cap_s = 1800.0
    load_before = os.getloadavg()
    started = time.monotonic()
    reader_task = asyncio.ensure_future(readers(during, started + cap_s, stop))
    upload = await _upload_phase(client, COLLECTION, text, reader_task, stop, cap_s)
    during_summary = during.summary(time.monotonic() - started)
    load_after = os.getloadavg()
    upload.update({"file": UPLOAD_NAME, "bytes": len(text), "doc_id": f"upload/{UPLOAD_NAME}"})
    log(f"upload job {upload['job_state']} in {upload['seconds']:.1f} s; checking its chunks ...")
    upload.update(await _find_chunks(client, COLLECTION, upload["doc_id"]))
    comparison = upload_comparison(without_summary, during_summary, upload)
    return {
        "phases": {"without_upload": without_summary, "during_upload": during_summary},
        "upload": upload,
        "comparison": comparison,
        "load_average_during_upload": {"before": load_before, "after": load_after},
        "ok": comparison["ok"],
    }


def vocabulary_of(corpus: dict[str, tuple[str, str]]) -> list[str]:
    """The corpus's lower-case words (3+ letters): the upload reads like the collection."""
    words: set[str] = set()
    for title, text in corpus.values():
        words.update(_WORD.findall(f"{title} {text}".lower()))
    return sorted(words)


def upload_markdown(result: dict[str, Any]) -> str:
    from .report import machine_line, markdown_table

    c = result["comparison"]
    config = result["config"]
    env = result["environment"]
    upload = result["upload"]
    a, b = c["without_upload"], c["during_upload"]
    rows = [
        ["phase length s", a["seconds"], b["seconds"], None],
        ["search requests", a["search_requests"], b["search_requests"], None],
        ["search QPS", a["search_qps"], b["search_qps"], b["search_qps"] / a["search_qps"] if a["search_qps"] else None],
        ["search p50 ms", a["search_p50_ms"], b["search_p50_ms"], None],
        ["search p99 ms", a["search_p99_ms"], b["search_p99_ms"], c["search_p99_ratio"]],
        ["search errors", a["search_errors"], b["search_errors"], None],
        ["errors (all endpoints)", a["errors_all_endpoints"], b["errors_all_endpoints"], None],
    ]
    verdict = "within" if c["p99_within_limit"] else "NOT within"
    lines = [
        f"# Load: search while a {config['compare_upload_kib']} KiB one-line document is uploaded",
        "",
        f"Command: `{env['command']}`",
        "",
        (
            f"One server and collection ({result['dataset']}, {result['indexing']['documents']} documents indexed first); "
            f"{config['clients']} clients (mix {config['mix']}) for {config['duration_s']:.0f} s without an upload, "
            f"then for as long as the upload's job ran. Models: dense `{Path(config['dense_model']).name}`, "
            f"sparse `{Path(config['sparse_model']).name if config['sparse_model'] else 'none'}`; search k={config['k']}."
        ),
        "",
        markdown_table(["", "without upload", "during upload", "during / without"], rows),
        "",
        f"Search p99 during the upload is **{verdict} {c['p99_limit']:g}x** of the run without it.",
        "",
        (
            f"Upload `{upload['doc_id']}` ({upload['bytes']} bytes, one line): job {upload['job_state']} in "
            f"{upload['seconds']:.1f} s; {upload['chunks_found']} of {upload['chunks_stored']} chunks found by search afterwards. "
            f"Result: **{'OK' if result['ok'] else 'FAILED'}** (no errors, upload succeeded, every chunk found)."
        ),
    ]
    if result["phases"]["during_upload"]["error_samples"] or result["phases"]["without_upload"]["error_samples"]:
        samples = result["phases"]["without_upload"]["error_samples"] + result["phases"]["during_upload"]["error_samples"]
        lines += ["", "Error samples:", "", *(f"- `{s}`" for s in samples[:10])]
    load = result["load_average_during_upload"]
    lines += [
        "",
        (
            f"Machine: {machine_line(env)}; load average {load['before'][0]:.2f} at the upload's start, "
            f"{load['after'][0]:.2f} at its end. Git {env['git_revision']}."
        ),
    ]
    return "\n".join(lines)
