"""Chunking: structure, budget, overlap, offsets, tables, determinism."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest

from hybrid_search.errors import ConfigError
from indexers.chunks import (
    MAX_PIECE_CHARS,
    ChunkingConfig,
    chunk_document,
    embed_prefix,
    hf_token_counter,
    sentence_spans,
    whitespace_token_counter,
)
from indexers.documents import Block, Document, read_document

pytestmark = pytest.mark.unit

count = whitespace_token_counter


def make_doc(*blocks: Block, title: str = "Doc", doc_id: str = "d.txt") -> Document:
    return Document(doc_id=doc_id, source=doc_id, title=title, blocks=tuple(blocks), format="text")


def para(text: str, path: tuple[str, ...] = (), page: int | None = None) -> Block:
    return Block("paragraph", text, page=page, heading_path=path)


def heading(text: str, level: int, path: tuple[str, ...]) -> Block:
    return Block("heading", text, heading_path=path, level=level)


def sentences(n: int, words: int = 9, tag: str = "S") -> str:
    """n sentences of ``words`` words each (the last word ends with a period)."""
    return " ".join(" ".join(f"{tag}{i}w{j}" for j in range(words)) + "." for i in range(n))


def check_offsets(doc: Document, chunks) -> None:
    """The documented invariant: text is the slice, or header row + newline + slice."""
    for c in chunks:
        piece = doc.text[c.char_start : c.char_end]
        assert c.text == piece or (c.text.endswith("\n" + piece) and "\n" not in c.text[: -len(piece) - 1])


# --------------------------------------------------------------------------- sentences


def test_sentence_spans_chinese_and_english():
    text = "第一句。第二句！第三句？第四句；“引号。”结尾 English one. Two? Yes!\nNew line no stop\n\n  last"
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == [
        "第一句。",
        "第二句！",
        "第三句？",
        "第四句；",
        "“引号。”",
        "结尾 English one.",
        "Two?",
        "Yes!",
        "New line no stop",
        "last",
    ]


def test_sentence_spans_do_not_split_decimals_or_urls():
    text = "Revenue was 3.5 billion at example.com today. Next."
    assert [text[s:e] for s, e in sentence_spans(text)] == ["Revenue was 3.5 billion at example.com today.", "Next."]


def test_whitespace_counter_counts_cjk_characters():
    assert count("hello world") == 2
    assert count("混合检索") == 4
    assert count("BM25 检索。") == 4


# --------------------------------------------------------------------------- packing, budget, overlap


def test_small_paragraphs_pack_into_one_chunk_with_offsets():
    doc = make_doc(para("Alpha one."), para("Beta two."), para("Gamma three."))
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=64, prepend_headings=False), count)
    assert len(chunks) == 1
    c = chunks[0]
    assert c.text == "Alpha one.\n\nBeta two.\n\nGamma three." == doc.text
    assert (c.char_start, c.char_end) == (0, len(doc.text))
    assert c.id == "d.txt#0" and c.embed_text is None and c.title == "Doc" and c.source == "d.txt"


def test_long_text_respects_budget_and_overlaps_whole_sentences():
    doc = make_doc(para(sentences(40)))
    cfg = ChunkingConfig(max_tokens=50, overlap_tokens=12, prepend_headings=False)
    chunks = chunk_document(doc, cfg, count)
    assert len(chunks) > 5
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    check_offsets(doc, chunks)
    for prev, nxt in pairwise(chunks):
        assert count(prev.text) <= 50
        assert nxt.char_start < prev.char_end  # overlap
        shared = doc.text[nxt.char_start : prev.char_end]
        assert count(shared) <= 12
        assert shared.endswith(".") and re.match(r"S\d+w0", shared)  # whole sentences
        assert nxt.char_end > prev.char_end  # progress
    # Every sentence is in some chunk.
    covered = set()
    for c in chunks:
        covered.update(re.findall(r"S\d+w0", c.text))
    assert covered == {f"S{i}w0" for i in range(40)}


def test_no_overlap_when_disabled():
    doc = make_doc(para(sentences(30)))
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=40, overlap_tokens=0, prepend_headings=False), count)
    for prev, nxt in pairwise(chunks):
        assert nxt.char_start > prev.char_end


def test_paragraph_that_fits_is_not_cut_across_chunks():
    a, b = para(sentences(3, tag="A")), para(sentences(3, tag="B"))  # 27 tokens each
    chunks = chunk_document(make_doc(a, b), ChunkingConfig(max_tokens=40, overlap_tokens=0), count)
    assert [c.text for c in chunks] == [a.text, b.text]


def test_overlong_sentence_and_unpunctuated_chinese_are_hard_split():
    long_sentence = " ".join(f"w{i}" for i in range(130))
    chinese = "混合检索" * 40  # 160 characters, no sentence end
    doc = make_doc(para(long_sentence), para(chinese))
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=32, overlap_tokens=0, prepend_headings=False), count)
    check_offsets(doc, chunks)
    assert all(count(c.text) <= 32 for c in chunks)
    assert "".join(c.text for c in chunks if "w" not in c.text) == chinese
    assert " ".join(c.text for c in chunks if "w" in c.text) == long_sentence  # cut at spaces, words whole


def test_chinese_text_is_split_on_chinese_sentence_ends(write, samples):
    doc = read_document(write("cn.txt", samples["chinese"].encode("gbk")))
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=24, overlap_tokens=0, prepend_headings=False), count)
    check_offsets(doc, chunks)
    assert all(count(c.text) <= 24 for c in chunks)
    # Cuts fall right after a Chinese terminator (or at a block end).
    block_ends = {e for _, e in doc.block_spans()}
    for c in chunks:
        assert c.char_end in block_ends or doc.text[c.char_end - 1] in "。！？；"


def test_budget_holds_with_a_subword_tokenizer(samples):
    tokenizers = pytest.importorskip("tokenizers")
    corpus = [sentences(20), samples["chinese"], samples["traditional"]]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, tokenizers.trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]"]))

    class Wrapper:  # what a transformers fast tokenizer exposes
        backend_tokenizer = tok

    counter = hf_token_counter(Wrapper())
    assert counter("S1w1") == len(tok.encode("S1w1", add_special_tokens=False).ids)
    doc = make_doc(para(corpus[0]), para(corpus[1]), para(corpus[2]), title="Subword")
    cfg = ChunkingConfig(max_tokens=40, overlap_tokens=8)
    chunks = chunk_document(doc, cfg, counter)
    assert len(chunks) > 3
    assert all(counter(c.embed_text) <= 40 for c in chunks)
    check_offsets(doc, chunks)
    # Batch counting up front (counter.many) changes nothing but speed.
    assert chunk_document(doc, cfg, lambda text: counter(text)) == chunks


def test_hf_token_counter_ignores_padding_and_truncation_in_tokenizer_json():
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "[PAD]": 1, **{f"w{i}": i + 2 for i in range(20)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.enable_padding(length=16, pad_id=1, pad_token="[PAD]")
    tok.enable_truncation(max_length=4)

    class Wrapper:
        backend_tokenizer = tok

    counter = hf_token_counter(Wrapper())
    assert counter("w1 w2") == 2
    assert counter(" ".join(f"w{i}" for i in range(10))) == 10
    assert len(tok.encode("w1 w2").ids) == 16  # the caller's tokenizer is left as it was


def test_hf_token_counter_slow_tokenizer_path():
    class Slow:
        def __call__(self, text, add_special_tokens, verbose):
            assert add_special_tokens is False
            return {"input_ids": text.split()}

    assert hf_token_counter(Slow())("a b c") == 3


# --------------------------------------------------------------------------- structure


def test_chunks_stay_within_sections_and_carry_heading_paths():
    blocks = (
        para("Preamble text."),
        heading("Leave", 1, ("Leave",)),
        para(sentences(2, tag="L"), ("Leave",)),
        heading("Sick", 2, ("Leave", "Sick")),
        para(sentences(2, tag="K"), ("Leave", "Sick")),
        heading("Pay", 1, ("Pay",)),
        para("Paid monthly.", ("Pay",)),
    )
    doc = make_doc(*blocks, title="Handbook")
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=200), count)
    assert [(c.heading_path, c.text[:2]) for c in chunks] == [
        ((), "Pr"),
        (("Leave",), "L0"),
        (("Leave", "Sick"), "K0"),
        (("Pay",), "Pa"),
    ]
    assert chunks[2].embed_text == "Handbook / Leave > Sick\n\n" + chunks[2].text
    assert chunks[0].embed_text == "Handbook\n\nPreamble text."
    check_offsets(doc, chunks)
    for c in chunks:  # heading text is not inside chunk text; it travels in heading_path
        assert "Sick" not in c.text and "Leave" not in c.text


def test_section_level_keeps_deeper_headings_inline():
    blocks = (
        heading("Leave", 1, ("Leave",)),
        para("Intro.", ("Leave",)),
        heading("Sick", 2, ("Leave", "Sick")),
        para("Call in.", ("Leave", "Sick")),
    )
    chunks = chunk_document(make_doc(*blocks), ChunkingConfig(section_level=1), count)
    assert len(chunks) == 1
    assert chunks[0].text == "Intro.\n\nSick\n\nCall in."
    assert chunks[0].heading_path == ("Leave",)


def test_embed_prefix_skips_a_title_repeated_by_the_top_heading():
    cfg = ChunkingConfig()
    assert embed_prefix("Guide", ("Guide", "Install"), cfg) == "Guide > Install"
    assert embed_prefix("Guide", ("Setup",), cfg) == "Guide / Setup"
    assert embed_prefix("", (), cfg) == ""


def test_heading_prefix_comes_out_of_the_budget():
    path = ("A very long heading that takes many tokens indeed",)
    doc = make_doc(heading(path[0], 1, path), para(sentences(20), path), title="T")
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=40, overlap_tokens=0), count)
    assert all(count(c.embed_text) <= 40 for c in chunks)
    assert max(count(c.text) for c in chunks) <= 40 - count("T / " + path[0])


def test_pages_follow_the_first_block_of_each_chunk():
    doc = make_doc(*(para(sentences(2, tag=f"P{n}_"), page=n) for n in range(1, 6)))
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=40, overlap_tokens=0), count)
    spans = doc.block_spans()
    for c in chunks:
        first = next(i for i, (s, e) in enumerate(spans) if s <= c.char_start < e)
        assert c.page == doc.blocks[first].page


# --------------------------------------------------------------------------- tables


def table_block(n_rows: int, path: tuple[str, ...] = ()) -> Block:
    rows = ["Region | Units | Revenue"] + [f"R{i} | {i} | {i * 10}" for i in range(n_rows)]
    return Block("table", "\n".join(rows), heading_path=path)


def test_table_that_fits_is_kept_whole():
    doc = make_doc(para("Intro sentence."), table_block(5), para("After."))
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=100, prepend_headings=False), count)
    assert len(chunks) == 1 and doc.blocks[1].text in chunks[0].text


def test_table_that_fits_a_chunk_alone_starts_a_new_one():
    doc = make_doc(para(sentences(4)), table_block(6))
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=50, overlap_tokens=0, prepend_headings=False), count)
    assert chunks[-1].text == doc.blocks[1].text


def test_big_table_is_split_by_rows_repeating_the_header():
    table = table_block(60)
    doc = make_doc(para("The table follows."), table, para("Done."))
    cfg = ChunkingConfig(max_tokens=40, overlap_tokens=8, prepend_headings=False)
    chunks = chunk_document(doc, cfg, count)
    check_offsets(doc, chunks)
    table_chunks = [c for c in chunks if "|" in c.text]
    assert len(table_chunks) > 3
    rows_seen = []
    for c in table_chunks:
        assert count(c.text) <= 40
        lines = c.text.split("\n")
        assert lines[0] == "Region | Units | Revenue"
        rows_seen += lines[1:]
    assert rows_seen == table.text.split("\n")[1:]  # every row once, in order, none cut
    assert chunks[-1].text == "Done."  # no overlap out of a table


# --------------------------------------------------------------------------- whole documents


def test_real_readers_then_chunker_offsets_and_determinism(write, samples, docx_file):
    docs = [
        read_document(write("g.md", samples["markdown"])),
        read_document(write("p.html", samples["html"])),
        read_document(docx_file),
        read_document(write("cn.txt", samples["chinese"])),
    ]
    cfg = ChunkingConfig(max_tokens=16, overlap_tokens=4)
    for doc in docs:
        chunks = chunk_document(doc, cfg, count)
        assert chunks, doc.source
        check_offsets(doc, chunks)
        assert chunk_document(doc, cfg, count) == chunks
        assert len({c.id for c in chunks}) == len(chunks)
        assert all(c.source == doc.source and c.title == doc.title for c in chunks)


def test_record_metadata_is_copied_to_each_chunk():
    doc = Document("r1", "recs.jsonl", "T", (para(sentences(10)),), "jsonl", {"dept": "HR"})
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=30), count)
    assert len(chunks) > 1 and all(c.metadata == {"dept": "HR"} for c in chunks)
    chunks[0].metadata["dept"] = "changed"
    assert doc.metadata == {"dept": "HR"} and chunks[1].metadata == {"dept": "HR"}


def test_empty_document_gives_no_chunks():
    assert chunk_document(make_doc(), ChunkingConfig(), count) == []


def test_default_overlap_scales_with_the_budget():
    assert ChunkingConfig().overlap_tokens == 32
    assert ChunkingConfig(max_tokens=40).overlap_tokens == 5
    assert ChunkingConfig(max_tokens=40, overlap_tokens=0).overlap_tokens == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_tokens": 4}, {"overlap_tokens": -1}, {"max_tokens": 100, "overlap_tokens": 51}, {"section_level": 0}],
)
def test_chunking_config_is_validated(kwargs):
    with pytest.raises(ConfigError):
        ChunkingConfig(**kwargs)


def _unbroken(chars: int, spaced: bool) -> Document:
    unit = "lorem ipsum dolor sit amet " if spaced else "loremipsumdolorsitamet"
    return make_doc(para((unit * (chars // len(unit) + 1))[:chars]))


@pytest.mark.parametrize("spaced", [True, False], ids=["words-no-sentence-end", "no-whitespace"])
def test_unbroken_text_is_chunked_in_linear_work(spaced):
    # Work is measured as characters handed to the token counter (what costs
    # time with a real tokenizer), as a ratio between two sizes of one text:
    # linear work gives ~10x for 10x the text; counting the remainder at every
    # cut (the old way) gave ~100x.
    def work(chars: int) -> tuple[int, list]:
        seen = [0]

        def counting(text: str) -> int:
            seen[0] += len(text)
            return count(text)

        chunks = chunk_document(_unbroken(chars, spaced), ChunkingConfig(max_tokens=64), counting)
        return seen[0], chunks

    base, base_chunks = work(100_000)
    big, big_chunks = work(1_000_000)
    assert big / base < 20, (base, big)
    for chunks, chars in ((base_chunks, 100_000), (big_chunks, 1_000_000)):
        assert all(count(c.text) <= 64 and len(c.text) <= MAX_PIECE_CHARS for c in chunks)
        # nothing lost: the chunks cover the text up to the whitespace between them
        assert "".join(c.text for c in chunks).replace(" ", "") == _unbroken(chars, spaced).blocks[0].text.replace(" ", "")


def test_a_word_the_tokenizer_counts_as_one_token_is_still_cut_to_fit_the_store():
    chunks = chunk_document(make_doc(para("x" * 50_000)), ChunkingConfig(max_tokens=64), count)
    assert [len(c.text) for c in chunks] == [MAX_PIECE_CHARS] * 3 + [50_000 - 3 * MAX_PIECE_CHARS]
