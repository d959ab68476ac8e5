"""Chunks as the store keeps them, and back: the one mapping between a
``Chunk`` and the row fields Milvus holds (metadata with hybrid-search's own
bookkeeping merged in under reserved keys)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .store import heading_path_from_row
from .types import Chunk

__all__ = [
    "EMBED_PREFIX_KEY",
    "EMBED_TEXT_KEY",
    "RESERVED_METADATA_PREFIX",
    "chunk_from_row",
    "page_of",
    "stored_chunk",
    "user_metadata",
]

#: Metadata keys with this prefix are hybrid-search's own bookkeeping.
RESERVED_METADATA_PREFIX = "_"
EMBED_PREFIX_KEY = "_embed_prefix"  # embedded text = prefix + text
EMBED_TEXT_KEY = "_embed_text"  # the embedded text, when it does not end with text


def stored_chunk(chunk: Chunk) -> Chunk:
    """``chunk`` with its bookkeeping merged into the metadata Milvus stores,
    including what rebuilds the exact text the encoders saw: the prefix before
    ``text`` (title and heading path), so a later re-embedding (promotion of a
    new model) embeds what the evaluated model embedded."""
    extra = {k: v for k, v in chunk.bookkeeping.items() if k not in (EMBED_PREFIX_KEY, EMBED_TEXT_KEY)}
    embedded = chunk.embed_text
    if embedded is not None and embedded != chunk.text:
        if chunk.text and embedded.endswith(chunk.text):
            extra[EMBED_PREFIX_KEY] = embedded[: len(embedded) - len(chunk.text)]
        else:
            extra[EMBED_TEXT_KEY] = embedded
    if not extra:
        return chunk
    return replace(chunk, metadata={**chunk.metadata, **extra})


def chunk_from_row(row: Mapping[str, Any]) -> Chunk:
    """A stored row (``store.OUTPUT_FIELDS``) back as the Chunk that was written,
    bookkeeping apart from the user's metadata."""
    stored = dict(row.get("metadata") or {})
    char_start = stored.pop("_char_start", None)
    char_end = stored.pop("_char_end", None)
    metadata = user_metadata(row)
    bookkeeping = {key: value for key, value in stored.items() if key.startswith(RESERVED_METADATA_PREFIX)}
    text = row["text"]
    embed_text = bookkeeping.get(EMBED_TEXT_KEY)
    if embed_text is None and bookkeeping.get(EMBED_PREFIX_KEY) is not None:
        embed_text = bookkeeping[EMBED_PREFIX_KEY] + text
    return Chunk(
        doc_id=row["doc_id"],
        chunk_index=int(row["chunk_index"]),
        text=text,
        title=row.get("title", ""),
        source=row.get("source", ""),
        page=page_of(row),
        heading_path=heading_path_from_row(row.get("heading", "")),
        char_start=char_start,
        char_end=char_end,
        metadata=metadata,
        embed_text=embed_text,
        bookkeeping=bookkeeping,
    )


def user_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    """The user's metadata of a stored row. Keys starting with "_" are
    bookkeeping (e.g. the ingest sync hashes, character offsets); user
    metadata cannot use them (refused on the way in)."""
    stored = row.get("metadata") or {}
    return {key: value for key, value in stored.items() if not key.startswith(RESERVED_METADATA_PREFIX)}


def page_of(row: Mapping[str, Any]) -> int | None:
    """A stored row's page (stored as -1 when there is none)."""
    page = row.get("page", -1)
    return None if page is None or page < 0 else int(page)
