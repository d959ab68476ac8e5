"""``python -m benchmarks load``: the HTTP service under concurrent load.

Starts ``hybrid-search serve`` (uvicorn, one worker, its own temporary Milvus
Lite file, real models) on loopback, indexes a BEIR corpus through the API,
then for a bounded time runs N concurrent clients (search, get document,
collection stats, list collections) while a writer adds documents through the
API's background jobs. Reports QPS, p50/p95/p99 per endpoint, the error count,
the server's own per-stage search latencies (from /metrics), and checks that
every document indexed before and during the run can be fetched by id and
found by search afterwards.

``--compare-batching`` runs the whole benchmark twice in one command, with
query micro-batching off (``HYBRID_SEARCH_QUERY_BATCH_SIZE=1``: searches take
turns on the model, as before it existed) and on (the server's default), and
reports the search QPS ratio and both p99s.

``--compare-upload KIB`` keeps one server and collection and runs the readers
twice, alone and then while a KIB KiB one-line text file is uploaded through
the upload route (benchmarks/load_upload.py); it reports the search p99 ratio.

The numbers are only meaningful with real models: the tiny test models are
refused. Clients and server share the machine's cores; the result records the
CPU count and the load average so a reader can tell a busy machine.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

__all__ = ["DEFAULT_DENSE", "DEFAULT_SPARSE", "LoadConfig", "load_command", "load_markdown", "run_load"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_MODELS = Path(os.environ.get("HYBRID_SEARCH_MODELS", "~/.cache/hybrid-search-models")).expanduser()
DEFAULT_DENSE = _MODELS / "all-MiniLM-L6-v2"
DEFAULT_SPARSE = _MODELS / "splade-tiny"
COLLECTION = "load"
#: Endpoint mix of the read clients: mostly searches, as a RAG backend sees.
DEFAULT_MIX = {"search": 0.80, "get_document": 0.12, "collection_stats": 0.05, "list_collections": 0.03}


@dataclass
class LoadConfig:
    clients: int = 8
    duration_s: float = 30.0
    dataset: str = "cranfield"
    initial_docs: int = 400
    writer_batch: int = 10
    writer_interval_s: float = 0.0
    dense_model: Path = DEFAULT_DENSE
    sparse_model: Path | None = DEFAULT_SPARSE
    k: int = 10
    max_requests: int = 200_000
    request_timeout_s: float = 30.0
    startup_timeout_s: float = 300.0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int = 13
    out_dir: Path = REPO_ROOT / "benchmarks" / "results" / "load"
    #: The server's HYBRID_SEARCH_QUERY_BATCH_SIZE (None: its default).
    query_batch_size: int | None = None
    #: Run twice, micro-batching off then on, and compare.
    compare_batching: bool = False
    #: Run the readers without, then during, an upload of a one-line text file of this many KiB.
    compare_upload_kib: int | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_models(config: LoadConfig) -> None:
    for label, path in (("dense", config.dense_model), ("sparse", config.sparse_model)):
        if path is None:
            continue
        if not Path(path).expanduser().is_dir():
            raise typer.BadParameter(
                f"the {label} model folder {path} does not exist. The load figures need real models "
                "(not the tiny test models): fetch them with `bash scripts/get-models.sh`, or pass --dense-model/--sparse-model"
            )
        if "tiny-models" in str(path) or (Path(path) / ".tiny-models-complete").exists():
            raise typer.BadParameter(f"{path} is a tiny test model; load figures with it would mean nothing")


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil(q/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


class _Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.total = 0

    def record(self, endpoint: str, seconds: float, ok: bool, detail: str = "") -> None:
        self.total += 1
        self.latencies[endpoint].append(seconds)
        if not ok:
            self.errors[endpoint] += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{endpoint}: {detail[:300]}")

    def summary(self, elapsed: float) -> dict[str, Any]:
        endpoints = {}
        for name, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            endpoints[name] = {
                "requests": len(values),
                "errors": self.errors.get(name, 0),
                "qps": len(values) / elapsed if elapsed > 0 else 0.0,
                "p50_ms": _ms(_percentile(ordered, 50)),
                "p95_ms": _ms(_percentile(ordered, 95)),
                "p99_ms": _ms(_percentile(ordered, 99)),
                "max_ms": _ms(ordered[-1]),
                "mean_ms": _ms(sum(values) / len(values)),
            }
        every = sorted(v for values in self.latencies.values() for v in values)
        return {
            "elapsed_s": elapsed,
            "requests": self.total,
            "errors": sum(self.errors.values()),
            "qps": self.total / elapsed if elapsed > 0 else 0.0,
            "p50_ms": _ms(_percentile(every, 50)),
            "p95_ms": _ms(_percentile(every, 95)),
            "p99_ms": _ms(_percentile(every, 99)),
            "endpoints": endpoints,
            "error_samples": self.error_samples,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


class _Server:
    """``python -m hybrid_search.api.server`` in a subprocess on loopback."""

    def __init__(self, config: LoadConfig, work: Path, query_batch_size: int | None) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "server.log"
        command = [
            sys.executable, "-m", "hybrid_search.api.server",
            "--store-uri", str(work / "load.db"),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--dense-model", str(config.dense_model), "--dense-kind", "sentence-transformers",
            "--sparse-model", str(config.sparse_model) if config.sparse_model else "none", "--sparse-kind", "splade",
            "--device", "cpu", "--log-level", "warning",
        ]  # fmt: skip
        env = dict(os.environ)
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "HYBRID_SEARCH_UPLOAD_DIR": str(work / "uploads"),
                # The benchmark asks for k=10 with default depth; keep the server's stock limits.
            }
        )
        for name in ("HYBRID_SEARCH_READ_API_KEYS", "HYBRID_SEARCH_WRITE_API_KEYS", "HYBRID_SEARCH_QUERY_BATCH_SIZE"):
            env.pop(name, None)
        if query_batch_size is not None:
            env["HYBRID_SEARCH_QUERY_BATCH_SIZE"] = str(query_batch_size)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the server; closed in stop()
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


async def _wait_jobs(client: Any, job_ids: list[str], timeout: float) -> dict[str, int]:
    """Poll until every job has finished; counts by final state."""
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    pending = list(job_ids)
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} indexing jobs still unfinished after {timeout:.0f} s")
        still = []
        for job_id in pending:
            body = (await client.get(f"/v1/jobs/{job_id}")).json()
            if body["state"] in ("succeeded", "failed"):
                states[job_id] = body["state"]
                if body["state"] == "failed":
                    states[job_id] = f"failed: {body.get('error')}"
            else:
                still.append(job_id)
        pending = still
        if pending:
            await asyncio.sleep(0.5)
    counts: dict[str, int] = defaultdict(int)
    for state in states.values():
        counts["succeeded" if state == "succeeded" else "failed"] += 1
    return dict(counts)


def _records(ids: list[str], corpus: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    from .beir import document_text

    return [{"id": doc_id, "text": document_text(*corpus[doc_id]), "title": corpus[doc_id][0]} for doc_id in ids]


async def _index_initial(client: Any, ids: list[str], corpus: dict[str, tuple[str, str]], timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    jobs = []
    for start in range(0, len(ids), 100):
        response = await client.post(f"/v1/collections/{COLLECTION}/documents", json={"records": _records(ids[start : start + 100], corpus)})
        response.raise_for_status()
        jobs.append(response.json()["id"])
    states = await _wait_jobs(client, jobs, timeout)
    if states.get("failed"):
        raise RuntimeError(f"initial indexing: {states['failed']} jobs failed")
    return {"documents": len(ids), "seconds": time.perf_counter() - started}


async def _reader(
    client: Any,
    rng: random.Random,
    config: LoadConfig,
    deadline: float,
    recorder: _Recorder,
    queries: list[str],
    doc_ids: list[str],
    stop: asyncio.Event | None = None,
) -> None:
    names = list(config.mix)
    weights = [config.mix[n] for n in names]
    while time.monotonic() < deadline and recorder.total < config.max_requests and not (stop and stop.is_set()):
        endpoint = rng.choices(names, weights)[0]
        started = time.perf_counter()
        try:
            if endpoint == "search":
                response = await client.post(
                    f"/v1/collections/{COLLECTION}/search", json={"query": rng.choice(queries), "k": config.k}
                )
            elif endpoint == "get_document":
                response = await client.get(f"/v1/collections/{COLLECTION}/documents/{quote(rng.choice(doc_ids), safe='')}")
            elif endpoint == "collection_stats":
                response = await client.get(f"/v1/collections/{COLLECTION}")
            else:
                response = await client.get("/v1/collections")
            ok = response.status_code == 200
            detail = "" if ok else f"{response.status_code} {response.text}"
        except Exception as error:  # noqa: BLE001 - every failure counts as an error
            ok, detail = False, f"{type(error).__name__}: {error}"
        recorder.record(endpoint, time.perf_counter() - started, ok, detail)


async def _writer(
    client: Any, config: LoadConfig, deadline: float, recorder: _Recorder, pool: list[str], corpus: dict[str, tuple[str, str]], written: list[str], jobs: list[str]
) -> None:
    """Closed loop: add a batch, follow its job to the end (the polls are real
    traffic too), add the next. Indexing runs the whole time without piling up
    a backlog that would outlive the run."""
    position = 0
    while time.monotonic() < deadline and position < len(pool):
        batch = pool[position : position + config.writer_batch]
        position += len(batch)
        started = time.perf_counter()
        job_id = None
        try:
            response = await client.post(f"/v1/collections/{COLLECTION}/documents", json={"records": _records(batch, corpus)})
            ok = response.status_code == 202
            detail = "" if ok else f"{response.status_code} {response.text}"
            if ok:
                job_id = response.json()["id"]
                jobs.append(job_id)
                written.extend(batch)
        except Exception as error:  # noqa: BLE001
            ok, detail = False, f"{type(error).__name__}: {error}"
        recorder.record("add_documents", time.perf_counter() - started, ok, detail)
        while job_id is not None and time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                response = await client.get(f"/v1/jobs/{job_id}")
                ok = response.status_code == 200
                detail = "" if ok else f"{response.status_code} {response.text}"
                state = response.json().get("state") if ok else None
            except Exception as error:  # noqa: BLE001
                ok, detail, state = False, f"{type(error).__name__}: {error}", None
            recorder.record("job_status", time.perf_counter() - started, ok, detail)
            if state in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.25)
        if config.writer_interval_s > 0:
            await asyncio.sleep(config.writer_interval_s)


async def _verify(client: Any, doc_ids: list[str], corpus: dict[str, tuple[str, str]], concurrency: int = 4) -> dict[str, Any]:
    """Every document: fetched by id, and found by a search restricted to it."""
    missing_get: list[str] = []
    missing_search: list[str] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def check(doc_id: str) -> None:
        async with semaphore:
            got = await client.get(f"/v1/collections/{COLLECTION}/documents/{quote(doc_id, safe='')}")
            if got.status_code != 200 or not got.json()["chunks"]:
                missing_get.append(doc_id)
            title, text = corpus[doc_id]
            query = " ".join((title or text).split()[:24]) or doc_id
            found = await client.post(
                f"/v1/collections/{COLLECTION}/search",
                json={"query": query, "k": 1, "filters": [{"field": "doc_id", "op": "==", "value": doc_id}]},
            )
            hits = found.json().get("hits", []) if found.status_code == 200 else []
            if not hits or hits[0]["doc_id"] != doc_id:
                missing_search.append(doc_id)

    started = time.perf_counter()
    await asyncio.gather(*(check(d) for d in doc_ids))
    return {
        "documents_checked": len(doc_ids),
        "missing_by_id": sorted(missing_get),
        "missing_by_search": sorted(missing_search),
        "seconds": time.perf_counter() - started,
    }


_SAMPLE = re.compile(r'^(hybrid_search_search_stage_seconds_(?:bucket|sum|count))\{(.*)\} ([0-9.eE+-]+|NaN|\+Inf)$')


def stage_latencies(metrics_text: str) -> dict[str, dict[str, float | None]]:
    """Per search stage: mean, and p50/p95/p99 interpolated from the server's
    histogram buckets (as Prometheus's histogram_quantile does)."""
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        stage = fields.get("stage")
        if stage is None:
            continue
        if name.endswith("_bucket"):
            bound = float("inf") if fields["le"] == "+Inf" else float(fields["le"])
            buckets[stage].append((bound, float(value)))
        elif name.endswith("_sum"):
            sums[stage] = float(value)
        else:
            counts[stage] = float(value)

    def quantile(stage: str, q: float) -> float | None:
        rows = sorted(buckets[stage])
        total = counts.get(stage, 0.0)
        if not rows or total == 0:
            return None
        target = q * total
        previous_bound, previous_count = 0.0, 0.0
        for bound, cumulative in rows:
            if cumulative >= target:
                if bound == float("inf"):
                    return previous_bound * 1000
                share = (target - previous_count) / (cumulative - previous_count) if cumulative > previous_count else 1.0
                return (previous_bound + (bound - previous_bound) * share) * 1000
            previous_bound, previous_count = bound, cumulative
        return None

    out = {}
    for stage, count in counts.items():
        if count == 0:
            continue
        out[stage] = {
            "count": count,
            "mean_ms": round(sums.get(stage, 0.0) / count * 1000, 2),
            "p50_ms": _round(quantile(stage, 0.50)),
            "p95_ms": _round(quantile(stage, 0.95)),
            "p99_ms": _round(quantile(stage, 0.99)),
        }
    return out


_USAGE = re.compile(r'^hybrid_search_(query_encode_calls|queries_encoded|encode_seconds|store_calls|store_requests)_total(?:\{work="(\w+)"\})? ([0-9.eE+-]+)$')


def usage_counters(metrics_text: str) -> dict[str, float]:
    """The server's usage counters (``Engine.usage`` as exported on /metrics)."""
    found: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = _USAGE.match(line)
        if match:
            name, work, value = match.groups()
            found[f"{name}_{work}" if work else name] = float(value)
    return found


def usage_summary(before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, Any]:
    """What the models and the store did over a run: the mean query micro-batch,
    the share of the run's wall time the models spent on queries and on
    documents, and how many store requests shared a Milvus call."""

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    calls, queries = grew("query_encode_calls"), grew("queries_encoded")
    store_calls, store_requests = grew("store_calls"), grew("store_requests")
    return {
        "query_encode_calls": int(calls),
        "queries_encoded": int(queries),
        "mean_query_batch": round(queries / calls, 2) if calls else None,
        "model_busy_queries": round(grew("encode_seconds_queries") / seconds, 3) if seconds > 0 else None,
        "model_busy_documents": round(grew("encode_seconds_documents") / seconds, 3) if seconds > 0 else None,
        "store_calls": int(store_calls),
        "store_requests": int(store_requests),
        "store_requests_per_call": round(store_requests / store_calls, 2) if store_calls else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _run(config: LoadConfig, server: _Server, log: Any) -> dict[str, Any]:
    import httpx

    from .beir import load_beir
    from .presets import dataset_path

    name, folder = dataset_path(config.dataset)
    data = load_beir(folder, name)
    rng = random.Random(config.seed)
    doc_ids = sorted(d for d, (title, text) in data.corpus.items() if (title or text).strip())
    rng.shuffle(doc_ids)
    initial, pool = doc_ids[: config.initial_docs], doc_ids[config.initial_docs :]
    queries = [q for q in data.queries.values() if q.strip()]
    limits = httpx.Limits(max_connections=config.clients + 4, max_keepalive_connections=config.clients + 4)
    async with httpx.AsyncClient(base_url=server.base, timeout=config.request_timeout_s, limits=limits) as client:
        # Creating the collection loads its models: on a busy machine that outlasts a request timeout.
        created = await client.post("/v1/collections", json={"name": COLLECTION}, timeout=config.startup_timeout_s)
        if created.status_code != 201:
            raise RuntimeError(f"cannot create the collection: {created.status_code} {created.text}")
        log(f"indexing {len(initial)} documents of {name} through the API ...")
        indexing = await _index_initial(client, initial, data.corpus, timeout=3600)
        if config.compare_upload_kib:
            from .load_upload import upload_run, vocabulary_of

            log(f"indexed in {indexing['seconds']:.1f} s")
            phases = await upload_run(client, config, _reader, _Recorder, queries, initial, vocabulary_of(data.corpus), log)
            return {"dataset": name, "indexing": indexing, **phases}
        log(f"indexed in {indexing['seconds']:.1f} s; {config.clients} clients for {config.duration_s:.0f} s with a writer ...")
        recorder = _Recorder()
        written: list[str] = []
        writer_jobs: list[str] = []
        usage_before = usage_counters((await client.get("/metrics")).text)
        load_before = os.getloadavg()
        started = time.monotonic()
        deadline = started + config.duration_s
        tasks = [
            _reader(client, random.Random(config.seed + i), config, deadline, recorder, queries, initial) for i in range(config.clients)
        ]
        tasks.append(_writer(client, config, deadline, recorder, pool, data.corpus, written, writer_jobs))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        load_after = os.getloadavg()
        metrics_text = (await client.get("/metrics")).text
        stages = stage_latencies(metrics_text)
        usage = usage_summary(usage_before, usage_counters(metrics_text), elapsed)
        log(f"{recorder.total} requests in {elapsed:.1f} s; waiting for {len(writer_jobs)} writer jobs ...")
        job_states = await _wait_jobs(client, writer_jobs, timeout=600)
        log(f"checking that all {len(initial) + len(written)} documents can be fetched and found ...")
        verification = await _verify(client, initial + written, data.corpus)
    summary = recorder.summary(elapsed)
    return {
        "dataset": name,
        "indexing": indexing,
        "load": summary,
        "writer": {"documents_written": len(written), "jobs": len(writer_jobs), "job_states": job_states},
        "server_stage_latency_ms": stages,
        "server_usage": usage,
        "verification": verification,
        "load_average": {"before": load_before, "after": load_after},
        "ok": summary["errors"] == 0
        and not job_states.get("failed")
        and not verification["missing_by_id"]
        and not verification["missing_by_search"],
    }


def _run_server(config: LoadConfig, query_batch_size: int | None, log: Any, keep_work_dir: bool) -> dict[str, Any]:
    """One service, one run: start, index, load, verify, stop."""
    work = Path(tempfile.mkdtemp(prefix="hybrid-search-load-"))
    batching = "server default" if query_batch_size is None else str(query_batch_size)
    log(f"starting the service (models: {config.dense_model}, {config.sparse_model}; query batch size {batching}) ...")
    server = _Server(config, work, query_batch_size)
    try:
        server.wait_ready(config.startup_timeout_s)
        result = asyncio.run(_run(config, server, log))
    finally:
        server.stop()
        if not keep_work_dir:
            shutil.rmtree(work, ignore_errors=True)
    result["query_batch_size"] = query_batch_size
    return result


def batching_comparison(off: dict[str, Any], on: dict[str, Any]) -> dict[str, Any]:
    """Search QPS and tail latency with micro-batching on, relative to off."""
    searches_off = off["load"]["endpoints"].get("search", {})
    searches_on = on["load"]["endpoints"].get("search", {})
    qps_off, qps_on = searches_off.get("qps", 0.0), searches_on.get("qps", 0.0)
    return {
        "search_qps_off": qps_off,
        "search_qps_on": qps_on,
        "search_qps_ratio": qps_on / qps_off if qps_off else None,
        "search_p99_ms_off": searches_off.get("p99_ms"),
        "search_p99_ms_on": searches_on.get("p99_ms"),
        "errors_off": off["load"]["errors"],
        "errors_on": on["load"]["errors"],
        "mean_query_batch_off": off.get("server_usage", {}).get("mean_query_batch"),
        "mean_query_batch_on": on.get("server_usage", {}).get("mean_query_batch"),
        "ok": off["ok"] and on["ok"],
    }


def run_load(config: LoadConfig | None = None, *, log: Any = print, keep_work_dir: bool = False) -> dict[str, Any]:
    """Run the whole benchmark; returns the result (also written under ``config.out_dir``)."""
    from .report import environment, write_json, write_text

    config = config or LoadConfig()
    if config.clients < 1 or config.duration_s <= 0:
        raise typer.BadParameter("clients must be >= 1 and duration > 0")
    if config.compare_upload_kib is not None and not 1 <= config.compare_upload_kib <= 50 * 1024:
        raise typer.BadParameter("--compare-upload takes a size in KiB from 1 to 51200 (the server's upload limit)")
    if config.compare_upload_kib is not None and config.compare_batching:
        raise typer.BadParameter("--compare-upload and --compare-batching are separate runs: pass one")
    _check_models(config)
    if config.compare_batching:
        off = _run_server(config, 1, log, keep_work_dir)
        on = _run_server(config, config.query_batch_size, log, keep_work_dir)
        result = {"runs": {"batching_off": off, "batching_on": on}, "comparison": batching_comparison(off, on)}
        result["ok"] = result["comparison"]["ok"]
    else:
        result = _run_server(config, config.query_batch_size, log, keep_work_dir)
    env = environment()
    env["engine_patches"] = []  # the server is its own process and runs the stock engine
    env["packages"].update({p: _package_version(p) for p in ("fastapi", "uvicorn", "httpx", "prometheus-client")})
    result = {
        "benchmark": "load",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        **result,
        "environment": env,
        "notes": (
            "One uvicorn worker over Milvus Lite; clients, writer and server share the machine's CPUs over loopback. "
            + (
                "No writer: the second phase's only indexing is the uploaded file."
                if config.compare_upload_kib
                else "The writer adds documents through background jobs while the clients run."
            )
        ),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(config.out_dir)
    json_path = write_json(out / f"load-{stamp}.json", result)
    write_text(out / f"load-{stamp}.md", result_markdown(result))
    result["written_to"] = str(json_path)
    return result


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def result_markdown(result: dict[str, Any]) -> str:
    """The Markdown for whichever kind of run ``result`` is."""
    if "runs" in result:
        return comparison_markdown(result)
    if "phases" in result:
        from .load_upload import upload_markdown

        return upload_markdown(result)
    return load_markdown(result)


def comparison_markdown(result: dict[str, Any]) -> str:
    """Both runs of ``--compare-batching`` and their ratio."""
    from .report import markdown_table

    c = result["comparison"]
    rows = [
        ["search QPS", c["search_qps_off"], c["search_qps_on"], c["search_qps_ratio"]],
        ["search p99 ms", c["search_p99_ms_off"], c["search_p99_ms_on"], None],
        ["errors (all endpoints)", c["errors_off"], c["errors_on"], None],
        ["mean query micro-batch (server)", c.get("mean_query_batch_off"), c.get("mean_query_batch_on"), None],
    ]
    sections = [
        "# Load: query micro-batching off vs on, one command",
        "",
        f"Command: `{result['environment']['command']}`",
        "",
        markdown_table(["", "batching off", "batching on", "on / off"], rows),
        "",
        f"Both runs: **{'OK' if result['ok'] else 'FAILED'}** (no errors, every document written found afterwards).",
    ]
    for label, key in (("Micro-batching off (HYBRID_SEARCH_QUERY_BATCH_SIZE=1)", "batching_off"), ("Micro-batching on", "batching_on")):
        run = dict(result["runs"][key], config=result["config"], environment=result["environment"])
        body = load_markdown(run).split("\n", 1)[1]
        sections += ["", f"## {label}", body]
    return "\n".join(sections)


def load_markdown(result: dict[str, Any]) -> str:
    from .report import machine_line, markdown_table

    load = result["load"]
    config = result["config"]
    env = result["environment"]
    rows = [
        [name, e["requests"], e["errors"], e["qps"], e["p50_ms"], e["p95_ms"], e["p99_ms"], e["max_ms"]]
        for name, e in load["endpoints"].items()
    ]
    rows.append(["**all**", load["requests"], load["errors"], load["qps"], load["p50_ms"], load["p95_ms"], load["p99_ms"], None])
    stages = [[s, v["count"], v["mean_ms"], v["p50_ms"], v["p95_ms"], v["p99_ms"]] for s, v in result["server_stage_latency_ms"].items()]
    verification = result["verification"]
    lines = [
        f"# Load: {config['clients']} clients for {config['duration_s']:.0f} s, with indexing",
        "",
        (
            f"Dataset {result['dataset']}: {result['indexing']['documents']} documents indexed through the API before the run "
            f"({result['indexing']['seconds']:.1f} s); during it the writer added {result['writer']['documents_written']} more "
            f"in {result['writer']['jobs']} jobs ({result['writer']['job_states']})."
        ),
        (
            f"Models: dense `{Path(config['dense_model']).name}`, "
            f"sparse `{Path(config['sparse_model']).name if config['sparse_model'] else 'none'}`; "
            f"search k={config['k']}, all paths, RRF, no reranker."
        ),
        "",
        markdown_table(["endpoint", "requests", "errors", "QPS", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows),
        "",
        "Server-side search stages (from /metrics, interpolated from histogram buckets):",
        "",
        markdown_table(["stage", "count", "mean ms", "p50 ms", "p95 ms", "p99 ms"], stages),
        "",
        *([usage_markdown(result["server_usage"]), ""] if result.get("server_usage") else []),
        (
            f"Afterwards: {verification['documents_checked']} documents checked, "
            f"{len(verification['missing_by_id'])} missing by id, {len(verification['missing_by_search'])} not found by search. "
            f"Result: **{'OK' if result['ok'] else 'FAILED'}**."
        ),
        "",
        (
            f"Machine: {machine_line(env)}; load average {result['load_average']['before'][0]:.2f} before, "
            f"{result['load_average']['after'][0]:.2f} after. Git {env['git_revision']}."
        ),
    ]
    return "\n".join(lines)


def usage_markdown(usage: Mapping[str, Any]) -> str:
    """One paragraph on what the models and the store did during the run."""

    def percent(share: float | None) -> str:
        return "n/a" if share is None else f"{share * 100:.0f}%"

    return (
        f"During the run (server counters): {usage['queries_encoded']} queries encoded in {usage['query_encode_calls']} model calls "
        f"(mean micro-batch {usage['mean_query_batch']}); the models were busy {percent(usage['model_busy_queries'])} of the run "
        f"with queries and {percent(usage['model_busy_documents'])} with documents; {usage['store_requests']} path searches and "
        f"row reads went to Milvus in {usage['store_calls']} calls ({usage['store_requests_per_call']} per call)."
    )


def load_command(
    clients: int = typer.Option(8, help="concurrent read clients"),
    duration: float = typer.Option(30.0, help="seconds of load"),
    dataset: str = typer.Option("cranfield", help="BEIR preset name or folder: the corpus and the queries"),
    initial_docs: int = typer.Option(400, help="documents indexed before the run (the rest feed the writer)"),
    writer_batch: int = typer.Option(10, help="documents per writer request"),
    writer_interval: float = typer.Option(0.0, help="pause between one writer batch finishing and the next"),
    dense_model: Path = typer.Option(DEFAULT_DENSE, help="dense model folder (sentence-transformers)"),
    sparse_model: Path | None = typer.Option(DEFAULT_SPARSE, help="SPLADE model folder"),
    k: int = typer.Option(10, help="hits per search"),
    max_requests: int = typer.Option(200_000, help="stop the readers after this many requests"),
    out: Path = typer.Option(REPO_ROOT / "benchmarks" / "results" / "load", help="where the JSON and Markdown go"),
    keep_work_dir: bool = typer.Option(False, help="keep the temporary Milvus file and server log"),
    query_batch_size: int | None = typer.Option(None, help="the server's query micro-batch size (1: off; default: the server's)"),
    compare_batching: bool = typer.Option(False, help="run twice, micro-batching off then on, and report the ratio"),
    compare_upload: int | None = typer.Option(
        None, metavar="KIB", help="one server: run the readers without, then during, an upload of a KIB KiB one-line text file; report the p99 ratio"
    ),
) -> None:
    """Drive the HTTP service with concurrent clients while documents are added; report QPS and latency percentiles."""
    config = LoadConfig(
        clients=clients,
        duration_s=duration,
        dataset=dataset,
        initial_docs=initial_docs,
        writer_batch=writer_batch,
        writer_interval_s=writer_interval,
        dense_model=dense_model.expanduser(),
        sparse_model=sparse_model.expanduser() if sparse_model else None,
        k=k,
        max_requests=max_requests,
        out_dir=out,
        query_batch_size=query_batch_size,
        compare_batching=compare_batching,
        compare_upload_kib=compare_upload,
    )
    result = run_load(config, log=lambda message: typer.echo(message, err=True), keep_work_dir=keep_work_dir)
    typer.echo(result_markdown(result))
    typer.echo(f"\nwritten to {result['written_to']}", err=True)
    if not result["ok"]:
        raise typer.Exit(1)


#: ``benchmarks/__main__.py`` registers this module's ``main`` as ``load``.
main = load_command


if __name__ == "__main__":
    typer.run(load_command)
