"""Readers: every format, every encoding, every kind of bad file."""

from __future__ import annotations

import json
import os

import pytest

from hybrid_search.errors import ConfigError, InputError
from indexers.documents import (
    BLOCK_SEPARATOR,
    ReadError,
    ReadOptions,
    decode_text,
    document_format,
    read_document,
    read_documents,
    read_file,
    source_for,
)

pytestmark = pytest.mark.unit


def kinds(doc):
    return [b.kind for b in doc.blocks]


# --------------------------------------------------------------------------- PDF


def test_pdf_pages_are_kept_one_based(tmp_path, make_pdf):
    path = make_pdf(tmp_path / "r.pdf", ["Alpha page text.", "Beta page text.", "Gamma page text."])
    doc = read_document(path)
    assert doc.format == "pdf"
    by_page = {b.page: b.text for b in doc.blocks}
    assert by_page == {1: "Alpha page text.", 2: "Beta page text.", 3: "Gamma page text."}
    assert doc.title == "r"  # fpdf2 sets no Title metadata: the file name stands in


def test_pdf_running_header_and_page_numbers_are_dropped(tmp_path, make_pdf):
    pages = [f"ACME Annual Report\nBody of page {n} talks about topic {n}.\n{n}" for n in range(1, 6)]
    doc = read_document(make_pdf(tmp_path / "r.pdf", pages))
    text = doc.text
    assert "ACME Annual Report" not in text
    assert "Body of page 3 talks about topic 3." in text
    assert [b.page for b in doc.blocks] == [1, 2, 3, 4, 5]


def test_encrypted_pdf_is_skipped_with_reason(tmp_path, make_pdf):
    path = make_pdf(tmp_path / "secret.pdf", ["Top secret."], user_password="pw")
    with pytest.raises(ReadError) as err:
        read_document(path)
    assert err.value.reason == "encrypted"
    assert isinstance(err.value, InputError)


def test_pdf_with_owner_password_only_is_read(tmp_path, make_pdf):
    # Permissions-only encryption: every viewer opens these without a prompt.
    doc = read_document(make_pdf(tmp_path / "perm.pdf", ["Readable text."], user_password=""))
    assert doc.text == "Readable text."


@pytest.mark.parametrize(
    "content", [b"%PDF-1.4\nthis is not really a pdf\n%%EOF", b"GIF89a not a pdf at all"], ids=["garbage", "gif"]
)
def test_corrupt_pdf_is_skipped(write, content):
    with pytest.raises(ReadError) as err:
        read_document(write("broken.pdf", content))
    assert err.value.reason == "corrupt"


def test_truncated_pdf_is_skipped_or_read_never_crashes(tmp_path, make_pdf):
    path = make_pdf(tmp_path / "t.pdf", ["Some text here."] * 3)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = read_file(path)
    assert result.ok or result.skipped[0].reason in ("corrupt", "no_text")


def test_pdf_without_text_layer_is_no_text(tmp_path, make_pdf):
    path = make_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(ReadError) as err:
        read_document(path)
    assert err.value.reason == "no_text"


# --------------------------------------------------------------------------- DOCX


def test_docx_headings_paragraphs_lists_and_tables_in_order(docx_file):
    doc = read_document(docx_file)
    assert doc.title == "Employee Handbook"
    assert kinds(doc) == [
        "paragraph",
        "heading",
        "paragraph",
        "heading",
        "paragraph",
        "list",
        "table",
        "heading",
        "paragraph",
    ]
    headings = [(b.text, b.level, b.heading_path) for b in doc.blocks if b.kind == "heading"]
    assert headings == [
        ("Leave", 1, ("Leave",)),
        ("Sick leave", 2, ("Leave", "Sick leave")),
        ("Expenses", 1, ("Expenses",)),
    ]
    table = next(b for b in doc.blocks if b.kind == "table")
    assert table.text == "Grade | Days | Notes\nA | 20 | standard\nB | 25 | senior"
    assert table.heading_path == ("Leave", "Sick leave")
    assert doc.blocks[0].heading_path == ()
    assert doc.blocks[-1].heading_path == ("Expenses",)
    assert all(b.page is None for b in doc.blocks)


def test_docx_that_is_not_a_zip_is_corrupt(write):
    with pytest.raises(ReadError) as err:
        read_document(write("bad.docx", b"PK\x03\x04 broken zip"))
    assert err.value.reason == "corrupt"


def test_password_protected_office_file_is_encrypted(write):
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x01" * 600
    with pytest.raises(ReadError) as err:
        read_document(write("locked.docx", ole))
    assert err.value.reason == "encrypted"


# --------------------------------------------------------------------------- HTML


def test_html_keeps_content_and_drops_boilerplate(write, samples):
    doc = read_document(write("page.html", samples["html"]))
    text = doc.text
    for junk in ("SCRIPT_TEXT", "color: red", "SITE_HEADER", "SITE_FOOTER", "HIDDEN_TEXT", "Home", "Menu one"):
        assert junk not in text
    assert doc.title == "Quarterly Report"
    headings = [(b.text, b.level, b.heading_path) for b in doc.blocks if b.kind == "heading"]
    assert headings == [
        ("Quarterly Report", 1, ("Quarterly Report",)),
        ("Segments", 2, ("Quarterly Report", "Segments")),
        ("Outlook", 3, ("Quarterly Report", "Segments", "Outlook")),
    ]
    para = doc.blocks[1]
    assert para.text == "Revenue grew strongly this quarter. Margins improved.\nA new line."
    table = next(b for b in doc.blocks if b.kind == "table")
    # Empty spacer cells dropped, "$" glued to its number.
    assert table.text == "Segment | Revenue\nData Center | $3,833\nGaming | $1,574"
    assert table.heading_path == ("Quarterly Report", "Segments")
    lst = next(b for b in doc.blocks if b.kind == "list")
    assert lst.text == "- Growth continues\n- Costs stable\n  - Nested point"
    code = next(b for b in doc.blocks if b.kind == "code")
    assert code.text == "code   kept\n  as is"


def test_html_bold_paragraphs_become_headings_when_no_h_tags(write):
    html = """<html><body>
    <p style="font-weight:bold">ITEM 1. BUSINESS</p>
    <p>We make things.</p>
    <p><b>Products and Services</b></p>
    <p>Many products. <b>Some bold words</b> inside.</p>
    <p style="font-weight:bold">Run-in heading.<span style="font-weight:normal"> Then text.</span></p>
    <p style="font-weight:bold">CONSOLIDATED BALANCE SHEETS</p>
    <p style="font-weight:bold">DECEMBER 31, 2021 AND 2020</p>
    <table><tr><td>Cash</td><td>$</td><td>10</td></tr><tr><td>Total</td><td>$</td><td>12</td></tr></table>
    </body></html>"""
    doc = read_document(write("filing.htm", html))
    headings = [(b.text, b.level) for b in doc.blocks if b.kind == "heading"]
    assert headings == [
        ("ITEM 1. BUSINESS", 1),
        ("Products and Services", 2),
        ("CONSOLIDATED BALANCE SHEETS", 1),
        ("DECEMBER 31, 2021 AND 2020", 2),  # bold lines in a row nest
    ]
    assert doc.blocks[4].heading_path == ("ITEM 1. BUSINESS", "Products and Services")
    assert doc.blocks[-1].kind == "table" and doc.blocks[-1].text == "Cash | $10\nTotal | $12"
    assert doc.blocks[-1].heading_path == ("CONSOLIDATED BALANCE SHEETS", "DECEMBER 31, 2021 AND 2020")
    assert doc.title == "filing"  # no <title>, and a bold line is not trusted as one


def test_html_undeclared_encoding_is_detected(write, samples):
    html = f"<html><body><p>{samples['chinese']}</p></body></html>"
    doc = read_document(write("cn-undeclared.html", html.encode("gb18030")))
    assert doc.text.startswith("第一章 总则 为规范公司管理")


def test_binary_junk_named_html_is_skipped(write):
    with pytest.raises(ReadError) as err:
        read_document(write("junk.html", bytes(range(256)) * 4))
    assert err.value.reason == "binary"


def test_html_declared_gbk_charset_is_honoured(write):
    html = '<html><head><meta charset="gbk"><title>报告</title></head><body><p>营业收入增长。</p></body></html>'
    doc = read_document(write("cn.html", html.encode("gbk")))
    assert doc.title == "报告"
    assert doc.text == "营业收入增长。"


# --------------------------------------------------------------------------- Markdown


def test_markdown_headings_code_tables_and_front_matter(write, samples):
    doc = read_document(write("guide.md", samples["markdown"]))
    assert doc.title == "Engine Guide"
    assert kinds(doc) == [
        "heading",
        "paragraph",
        "heading",
        "paragraph",
        "list",
        "code",
        "table",
        "heading",
        "paragraph",
    ]
    code = next(b for b in doc.blocks if b.kind == "code")
    assert code.text == "```python\nx = 1\n\ny = 2\n```"
    table = next(b for b in doc.blocks if b.kind == "table")
    assert table.text == "Option | Default\nuri | kb.db\ntoken | none"
    assert table.heading_path == ("Install", "Configure")
    assert doc.blocks[-1].heading_path == ("Use",)
    assert "author" not in doc.text


def test_markdown_title_falls_back_to_first_h1(write):
    assert read_document(write("a.markdown", "Intro.\n\n# Real Title\n\nBody.")).title == "Real Title"


# --------------------------------------------------------------------------- plain text and encodings


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8", "utf-8-sig", "utf-16"])
def test_chinese_text_in_common_encodings(write, samples, encoding):
    doc = read_document(write(f"cn-{encoding}.txt", samples["chinese"].encode(encoding)))
    assert doc.text == samples["chinese"]
    assert [b.text for b in doc.blocks][:2] == ["第一章 总则", samples["chinese"].split("\n\n")[1]]


def test_big5_traditional_chinese(write, samples):
    doc = read_document(write("tw.txt", samples["traditional"].encode("big5")))
    assert doc.text == samples["traditional"]


def test_gb18030_only_characters_survive(write):
    text = "生僻字𠀀与欧元€符号，以及更多的中文内容用于检测编码。" * 3
    assert read_document(write("rare.txt", text.encode("gb18030"))).text == text


def test_utf8_bom_is_not_part_of_the_text(write):
    doc = read_document(write("bom.txt", "\ufeffHello\r\nworld".encode("utf-8")))
    assert doc.text == "Hello\nworld"


def test_forced_encoding(write, samples):
    path = write("forced.txt", samples["chinese"].encode("gbk"))
    assert read_document(path, ReadOptions(encoding="gbk")).text == samples["chinese"]
    with pytest.raises(ReadError) as err:
        read_document(path, ReadOptions(encoding="utf-8"))
    assert err.value.reason == "undecodable"


def test_plain_text_paragraphs_split_on_blank_lines(write):
    doc = read_document(write("p.txt", "One line\nsame para.\n\n \n\nSecond para."))
    assert [b.text for b in doc.blocks] == ["One line\nsame para.", "Second para."]
    assert doc.text == "One line\nsame para." + BLOCK_SEPARATOR + "Second para."


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 8,  # NUL bytes
        b"\x89PNG\r\n\x1a\n" + bytes((i * 37 + 11) % 255 + 1 for i in range(3000)),  # no NULs, still junk
    ],
    ids=["with-nul", "without-nul"],
)
def test_binary_junk_named_txt_is_skipped(write, content):
    with pytest.raises(ReadError) as err:
        read_document(write("junk.txt", content))
    assert err.value.reason == "binary"


def test_decode_text_rejects_control_character_soup():
    with pytest.raises(ReadError) as err:
        decode_text(b"ok \x01\x02\x03\x04\x05\x06\x07\x08 text \x0e\x0f\x10\x11")
    assert err.value.reason == "binary"


# --------------------------------------------------------------------------- bad files in general


def test_zero_byte_file_is_empty(write):
    with pytest.raises(ReadError) as err:
        read_document(write("empty.pdf", b""))
    assert err.value.reason == "empty"
    with pytest.raises(ReadError) as err:
        read_document(write("blank.txt", b" \n\t\n"))
    assert err.value.reason == "empty"


def test_oversized_file_is_skipped_before_reading(write):
    path = write("big.txt", "x" * 2000)
    with pytest.raises(ReadError) as err:
        read_document(path, ReadOptions(max_file_bytes=1000))
    assert err.value.reason == "too_large"


def test_unreadable_and_unsupported(tmp_path):
    (tmp_path / "folder.txt").mkdir()
    result = read_file(tmp_path / "folder.txt", root=tmp_path)
    assert not result.ok and result.skipped[0].reason == "unreadable"
    assert result.source == "folder.txt"
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    assert read_file(tmp_path / "sheet.xlsx").skipped[0].reason == "unsupported"
    assert read_file(tmp_path / "missing.txt").skipped[0].reason == "unreadable"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_permission_denied_is_unreadable(write):
    path = write("locked.txt", "secret")
    path.chmod(0)
    try:
        assert read_file(path).skipped[0].reason == "unreadable"
    finally:
        path.chmod(0o644)


# --------------------------------------------------------------------------- records


def test_jsonl_records_with_chosen_fields(write):
    lines = [
        {"id": "a1", "title": "First", "body": "Hello there.", "summary": "Short.", "dept": "HR", "year": 2024},
        {"id": "a2", "title": "Second", "body": "General Kenobi.", "dept": "IT"},
        "not json",
        {"id": "a3", "body": ""},
        {"id": "a1", "body": "Duplicate id."},
        {"body": "No id."},
        ["not", "an", "object"],
    ]
    content = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n\n"
    options = ReadOptions(
        text_fields=("body", "summary"), id_field="id", title_field="title", metadata_fields=("dept", "year")
    )
    result = read_file(write("data/recs.jsonl", content), options, root=write("x", "").parent)
    assert [d.doc_id for d in result.documents] == ["a1", "a2"]
    first = result.documents[0]
    assert first.title == "First"
    assert first.text == "Hello there.\n\nShort."
    assert first.metadata == {"dept": "HR", "year": 2024}
    assert first.source == "data/recs.jsonl" and first.format == "jsonl"
    assert result.documents[1].metadata == {"dept": "IT"}
    reasons = [(s.source, s.reason) for s in result.skipped]
    assert reasons == [
        ("data/recs.jsonl:3", "bad_record"),
        ("data/recs.jsonl:4", "no_text"),
        ("data/recs.jsonl:5", "duplicate_id"),
        ("data/recs.jsonl:6", "bad_record"),
        ("data/recs.jsonl:7", "bad_record"),
    ]


def test_jsonl_without_id_field_uses_line_numbers(write):
    path = write("r.jsonl", '{"text": "one"}\n\n{"text": "two"}\n')
    assert [d.doc_id for d in read_documents(path)] == ["r.jsonl:1", "r.jsonl:3"]


def test_csv_records_in_gbk(write):
    content = "编号,标题,正文,部门\n1,请假制度,年假二十天。病假需证明。,人事\n2,报销,三十天内提交。,财务\n"
    options = ReadOptions(text_fields=("正文",), id_field="编号", title_field="标题", metadata_fields=("部门",))
    docs = read_documents(write("政策.csv", content.encode("gbk")), options)
    assert [(d.doc_id, d.title, d.text, d.metadata) for d in docs] == [
        ("1", "请假制度", "年假二十天。病假需证明。", {"部门": "人事"}),
        ("2", "报销", "三十天内提交。", {"部门": "财务"}),
    ]


def test_records_file_with_no_usable_record_is_skipped(write):
    path = write("none.csv", "a,b\n1,2\n")
    with pytest.raises(ReadError) as err:
        read_documents(path)
    assert err.value.reason == "bad_record"
    path = write("blank.jsonl", '{"text": ""}\n')
    assert read_file(path).skipped[0].reason == "no_text"


def test_read_document_refuses_record_files(write):
    with pytest.raises(InputError, match="read_documents"):
        read_document(write("r.jsonl", '{"text": "x"}'))


# --------------------------------------------------------------------------- ids, options, formats


def test_doc_id_is_the_path_relative_to_root_and_stable(tmp_path, write):
    path = write("sub/dir/Notes.md", "# T\n\nBody.")
    first = read_document(path, root=tmp_path)
    again = read_document(path, root=tmp_path)
    assert first.doc_id == again.doc_id == "sub/dir/Notes.md" == first.source
    assert read_document(path).doc_id == "Notes.md"
    assert first == again
    with pytest.raises(InputError):
        source_for(path, tmp_path / "elsewhere")


def test_block_spans_index_document_text(write, samples):
    doc = read_document(write("g.md", samples["markdown"]))
    for block, (start, end) in zip(doc.blocks, doc.block_spans(), strict=True):
        assert doc.text[start:end] == block.text
        assert block.text == block.text.strip() and block.text


def test_formats_by_suffix():
    assert document_format("A.PDF") == "pdf"
    assert document_format("x.htm") == document_format("x.html") == "html"
    assert document_format("x.markdown") == "markdown"
    assert document_format("x.doc") is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_file_bytes": 0},
        {"text_fields": ()},
        {"text_fields": "text"},
        {"metadata_fields": "dept"},
        {"csv_delimiter": ";;"},
        {"encoding": "no-such-codec"},
    ],
)
def test_read_options_are_validated(kwargs):
    with pytest.raises(ConfigError):
        ReadOptions(**kwargs)
