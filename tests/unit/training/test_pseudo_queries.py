"""Offline pseudo-queries: inverse cloze, keywords (English TF-IDF, jieba), titles."""

from __future__ import annotations

import random

import pytest

from hybrid_search.errors import ConfigError
from hybrid_search.types import Chunk
from training.pseudo_queries import (
    PseudoQueryConfig,
    inverse_cloze_queries,
    keyword_queries,
    make_pseudo_queries,
    split_sentences,
    title_queries,
)

pytestmark = pytest.mark.unit

TEXT = (
    "Milvus is an open source vector database built for similarity search. "
    "Hybrid search combines dense retrieval with sparse lexical retrieval over an\ninverted index. "
    "A cross encoder reranks the top candidates returned by the retriever in a second stage."
)


def test_split_sentences_joins_wrapped_lines_and_splits_cjk() -> None:
    sentences = split_sentences(TEXT)
    assert len(sentences) == 3
    assert "over an inverted index." in sentences[1]
    assert split_sentences("今天天气晴朗。明天下雨！\n\n第二段") == ["今天天气晴朗。", "明天下雨！", "第二段"]


def test_inverse_cloze_removes_the_query_sentence_from_the_positive() -> None:
    chunk = Chunk(doc_id="d", chunk_index=0, text=TEXT)
    config = PseudoQueryConfig(kinds=("inverse-cloze",), per_chunk=2, min_rest_words=5)
    found = inverse_cloze_queries(chunk, config, random.Random(0))
    assert len(found) == 2
    for pseudo in found:
        assert pseudo.query in TEXT.replace("\n", " ")
        assert pseudo.query not in pseudo.positive
        assert pseudo.chunk_id == "d#0" and pseudo.kind == "inverse-cloze"


def test_english_keywords_prefer_distinctive_words() -> None:
    chunks = [
        Chunk(doc_id="a", chunk_index=0, text="The warehouse shipped twenty thousand orders during the holiday season. " * 2),
        Chunk(doc_id="b", chunk_index=0, text="Pilots checked the aircraft engines before flying across the Atlantic. " * 2),
        Chunk(doc_id="c", chunk_index=0, text="The orchestra performed a symphony with violins, trumpets and drums."),
    ]
    config = PseudoQueryConfig(kinds=("keywords",), per_chunk=2, keywords_per_query=3, keyword_pool=5)
    found = keyword_queries(chunks, config, random.Random(0))
    by_chunk: dict[str, list[str]] = {}
    for pseudo in found:
        by_chunk.setdefault(pseudo.chunk_id, []).append(pseudo.query)
    assert set(by_chunk) == {"a#0", "b#0", "c#0"}
    for chunk_id, queries in by_chunk.items():
        text = next(c.text for c in chunks if c.id == chunk_id).lower()
        assert len(set(queries)) == len(queries)
        for query in queries:
            words = query.split()
            assert len(words) == 3 and all(w in text for w in words)
            assert "the" not in words  # stop words are never keywords


def test_chinese_keywords_use_jieba() -> None:
    chunks = [
        Chunk(doc_id="z1", chunk_index=0, text="向量数据库用于高效的相似度检索。混合检索结合了稠密检索和稀疏检索。"),
        Chunk(doc_id="z2", chunk_index=0, text="公司第四季度的收入和利润创下新高。今年的营业收入增长了百分之十二。"),
    ]
    config = PseudoQueryConfig(kinds=("keywords",), per_chunk=1, keywords_per_query=2, keyword_pool=4, language="zh")
    found = keyword_queries(chunks, config, random.Random(0))
    assert {p.chunk_id for p in found} == {"z1#0", "z2#0"}
    assert all(" " not in p.query and len(p.query) >= 2 for p in found)
    assert "检索" in next(p.query for p in found if p.chunk_id == "z1#0") or "向量" in next(p.query for p in found if p.chunk_id == "z1#0")


def test_title_queries_drop_a_prepended_title() -> None:
    chunk = Chunk(doc_id="t", chunk_index=0, text="Vector search at scale\nThe index stores one billion vectors.", title="Vector search at scale")
    [pseudo] = title_queries([chunk])
    assert pseudo.query == "Vector search at scale"
    assert pseudo.positive == "The index stores one billion vectors."


def test_make_pseudo_queries_is_deterministic() -> None:
    chunks = [Chunk(doc_id=f"d{i}", chunk_index=0, text=TEXT + f" Extra sentence number {i} for variety here.") for i in range(3)]
    config = PseudoQueryConfig(kinds=("inverse-cloze", "keywords"), per_chunk=1, min_rest_words=5)
    assert make_pseudo_queries(chunks, config) == make_pseudo_queries(chunks, config)


def test_pseudo_config_validation() -> None:
    with pytest.raises(ConfigError, match="kinds"):
        PseudoQueryConfig(kinds=("questions",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="keyword_pool"):
        PseudoQueryConfig(keywords_per_query=5, keyword_pool=3)
