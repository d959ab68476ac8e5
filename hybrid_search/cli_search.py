"""`hybrid-search search` below its argument parsing: the flags as one value,
the search they ask for, the running server's answer, and the text rendering.

Shared by the Typer command (``cli.search``) and the quick entry point
(``cli_entry``), which both only parse the command line, so a search prints
the same whichever of the two ran it. Nothing here imports Typer, pydantic or
the engine; rich is imported where text is rendered (``--json`` needs none).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import RerankConfig, RuntimeConfig, StoreConfig
from .errors import ConfigError, HybridSearchError
from .filters import parse_filter
from .plan import SearchOptions
from .remote import ServerAnswer, ask_server, result_from_dict
from .settings import LayeredSettings, parse_weights
from .types import Hit, SearchResult

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "SearchFlags",
    "SearchRequest",
    "ServerOutcome",
    "collection_name",
    "print_answer",
    "print_note",
    "print_result",
    "search_request",
    "server_answer",
]


@dataclass(frozen=True)
class SearchFlags:
    """What the command line said to `search` (None: not given). Field names
    are the Typer command's parameter names; the defaults are its defaults."""

    query: str
    collection: str | None = None
    k: int | None = None
    paths: str | None = None
    depth: int | None = None
    fusion: str | None = None
    rrf_k: int | None = None
    normalization: str | None = None
    weights: str | None = None
    filter: tuple[str, ...] = ()
    rerank: bool | None = None
    rerank_model: str | None = None
    rerank_kind: str | None = None
    rerank_top_n: int | None = None
    min_rerank_score: float | None = None
    rerank_first_stage_weight: float | None = None
    as_json: bool = False
    explain: bool = False
    collapse: bool = True
    local: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class SearchRequest:
    """The search the flags and settings ask for, with the store and runtime it runs against."""

    collection: str
    query: str
    options: SearchOptions
    reranker: RerankConfig | None
    store: StoreConfig
    runtime: RuntimeConfig


def collection_name(settings: LayeredSettings, flag: str | None) -> str:
    name = settings.get("collection", "name", flag, None)
    if not name:
        raise ConfigError("name a collection with --collection (or HYBRID_SEARCH_COLLECTION, or [collection] name)")
    return str(name)


def search_request(settings: LayeredSettings, flags: SearchFlags) -> SearchRequest:
    s = settings
    name = collection_name(s, flags.collection)
    # A reranker is configured only when a model is named; whether to rerank
    # (and the error for --rerank without one) is the engine's decision.
    reranker = None
    if s.get("rerank", "model", flags.rerank_model, None):
        reranker = s.rerank_config(flags.rerank_model, flags.rerank_kind, flags.rerank_top_n, flags.min_rerank_score, flags.rerank_first_stage_weight)
    path_text = s.get("search", "paths", flags.paths, None)
    depth_value = s.get("search", "depth", flags.depth, None)
    options = SearchOptions(
        k=int(s.get("search", "k", flags.k, 10)),
        paths=tuple(p.strip() for p in path_text.split(",") if p.strip()) if path_text else None,
        depth=int(depth_value) if depth_value is not None else None,
        fusion_method=s.get("search", "fusion", flags.fusion, None),
        rrf_k=flags.rrf_k,
        normalization=flags.normalization,
        weights=parse_weights(flags.weights),
        filters=tuple(parse_filter(f) for f in flags.filter),
        rerank=flags.rerank,
        rerank_top_n=flags.rerank_top_n,
        min_rerank_score=flags.min_rerank_score,
        rerank_first_stage_weight=flags.rerank_first_stage_weight,
        collapse=flags.collapse,
    )
    return SearchRequest(
        collection=name,
        query=flags.query,
        options=options,
        reranker=reranker,
        store=s.store_config(),
        runtime=s.runtime_config(),
    )


@dataclass(frozen=True)
class ServerOutcome:
    """What asking the running server gave for ``request``: its answer, or the
    error it ended with. The quick entry point hands it to the full CLI when it
    cannot print the answer itself, so one search never asks the server twice."""

    request: SearchRequest
    answer: ServerAnswer | None = None
    error: HybridSearchError | None = None


def server_answer(request: SearchRequest, asked: ServerOutcome | None = None) -> ServerAnswer:
    """The running server's answer to ``request`` (``remote.ask_server``), or
    the outcome already met for this same request in this process."""
    if asked is not None and asked.request == request:
        if asked.error is not None:
            raise asked.error
        if asked.answer is not None:
            return asked.answer
    return ask_server(
        request.store,
        device=request.runtime.device,
        fp16=request.runtime.fp16,
        reranker=request.reranker,
        collection=request.collection,
        query=request.query,
        options=request.options,
    )


# --- rendering ------------------------------------------------------------------------------


def print_note(err_console: Console, answer: ServerAnswer) -> None:
    """``--verbose``: where the search runs, and why not on the server."""
    from rich.markup import escape

    if answer.body is not None:
        err_console.print(answer.note, highlight=False, soft_wrap=True)
    else:
        err_console.print(f"searching in this process: {escape(answer.note)}", highlight=False, soft_wrap=True)


def print_answer(console: Console | None, body: dict[str, Any], *, as_json: bool, explain: bool) -> None:
    """The server's answer, printed as the same search run here prints its result
    (``console`` may be None with ``as_json``)."""
    for item in body["hits"]:
        item.pop("source_url", None)  # the API's own addition: the local result has none
    if as_json:
        sys.stdout.write(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
    else:
        assert console is not None
        print_result(console, result_from_dict(body), explain)


def print_result(console: Console, result: SearchResult, explain: bool) -> None:
    from rich.markup import escape

    console.print(
        f"[bold]{result.collection}[/]: {result.query!r}  paths {', '.join(result.paths)}; fusion {result.fusion}"
        + (f" ({', '.join(f'{p} {w:.2f}' for p, w in result.fusion_weights.items())})" if len(result.paths) > 1 else "")
        + ("; reranked" if result.reranked else ""),
        highlight=False,
    )
    if not result.confident:
        console.print("[bold yellow]no confident result[/]: no candidate reached the minimum rerank score")
        return
    if not result.hits:
        console.print("no results")
        return
    for hit in result.hits:
        where = [hit.doc_id]
        if hit.page is not None:
            where.append(f"p.{hit.page}")
        if hit.heading_path:
            where.append(" > ".join(hit.heading_path))
        # A Markdown or DOCX title is usually its first heading too: say it once.
        title = f"  [dim]{escape(hit.title)}[/]" if hit.title and hit.title not in hit.heading_path[:1] else ""
        console.print(f"\n[bold]{hit.rank}.[/] {escape('  '.join(where))}{title}", highlight=False)
        scores = []
        for path in result.paths:
            score = hit.paths.get(path)
            scores.append(f"{path} #{score.rank} {score.score:.4g}" if score else f"{path} -")
        scores.append(f"fused {hit.fused_score:.4g}")
        if result.reranked:
            scores.append(f"rerank {hit.rerank_score:.4f}" if hit.rerank_score is not None else "rerank -")
            # Only when the first stage was mixed in: otherwise it equals the rerank score.
            if hit.combined_score is not None and result.rerank_first_stage_weight:
                scores.append(f"combined {hit.combined_score:.4f} (w={result.rerank_first_stage_weight:g})")
        console.print("   " + " | ".join(scores), highlight=False)
        console.print("   " + _highlight_passage(hit, whole=explain), highlight=False)
        if hit.folded:
            copies = ", ".join(copy.chunk_id for copy in hit.folded[:5]) + (", …" if len(hit.folded) > 5 else "")
            console.print(f"   [dim]+{len(hit.folded)} duplicate{'s' if len(hit.folded) > 1 else ''} folded: {escape(copies)}[/]", highlight=False)
    timings = ", ".join(f"{k} {v:.1f}ms" for k, v in result.timings_ms.items())
    console.print(f"\nquery terms: {' '.join(result.query_terms) or '-'}\ntimings: {timings}", highlight=False)


def _highlight_passage(hit: Hit, whole: bool) -> str:
    """The hit's snippet (its whole text with ``whole``), matched terms in bold,
    with an ellipsis where the snippet cuts the text."""
    if whole or hit.snippet is None:
        return _highlight(hit.text, hit.matched_terms)
    snippet = hit.snippet
    # Blank lines (between paragraphs, around a heading) would only spread the hit out.
    text = re.sub(r"\n\s*\n", "\n", snippet.text)
    return ("…" if snippet.start > 0 else "") + _highlight(text, hit.matched_terms) + ("…" if snippet.end < len(hit.text) else "")


def _highlight(text: str, terms: tuple[str, ...]) -> str:
    """Rich markup with the matched surface terms in bold."""
    from rich.markup import escape

    if not terms:
        return escape(text)

    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)))
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f"[bold yellow]{escape(match.group())}[/]")
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)
