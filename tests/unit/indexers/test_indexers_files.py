"""Folder walking: globs, order, hidden files, and a run that survives bad files."""

from __future__ import annotations

import pytest

from hybrid_search.errors import ConfigError, InputError
from indexers.files import FileSelection, find_files, read_folder

pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path, write, make_pdf, samples):
    write("b.md", "# B\n\nBee.")
    write("a.txt", "Ay.")
    write("docs/guide.md", samples["markdown"])
    write("docs/deep/er/notes.TXT", "Deep notes.")
    write("docs/drafts/wip.md", "Draft.")
    write("cn/gbk.txt", samples["chinese"].encode("gbk"))
    write("bad/empty.txt", b"")
    write("bad/junk.txt", bytes(range(256)) * 4)
    write("bad/broken.pdf", b"%PDF-1.4 nonsense")
    make_pdf(tmp_path / "bad" / "locked.pdf", ["secret"], user_password="pw")
    write(".hidden/secret.md", "Hidden.")
    write(".dotfile.txt", "Hidden.")
    write("~$lock.docx", b"\x00lock")
    write("image.png", b"\x89PNG")
    write("data/recs.jsonl", '{"text": "one"}\nnot json\n{"text": "two"}\n')
    return tmp_path


def rel(paths, root):
    return [p.relative_to(root).as_posix() for p in paths]


def test_walk_is_recursive_sorted_and_skips_hidden_and_unsupported(tree):
    assert rel(find_files(tree), tree) == [
        "a.txt",
        "b.md",
        "bad/broken.pdf",
        "bad/empty.txt",
        "bad/junk.txt",
        "bad/locked.pdf",
        "cn/gbk.txt",
        "data/recs.jsonl",
        "docs/deep/er/notes.TXT",
        "docs/drafts/wip.md",
        "docs/guide.md",
    ]


def test_include_and_exclude_globs(tree):
    md_only = FileSelection(include=("*.md",), exclude=("drafts/",))
    assert rel(find_files(tree, md_only), tree) == ["b.md", "docs/guide.md"]
    under_docs = FileSelection(include=("docs/**",), exclude=("*.md", "!guide.md"))
    assert rel(find_files(tree, under_docs), tree) == ["docs/deep/er/notes.TXT", "docs/guide.md"]
    with_hidden = FileSelection(include=("*.md",), skip_hidden=False)
    assert ".hidden/secret.md" in rel(find_files(tree, with_hidden), tree)


def test_a_single_file_root(tree):
    assert find_files(tree / "a.txt") == [tree / "a.txt"]
    assert find_files(tree / "image.png") == []
    with pytest.raises(InputError):
        find_files(tree / "nope")


def test_read_folder_reports_bad_files_and_reads_the_rest(tree):
    results = list(read_folder(tree))
    assert [r.source for r in results] == rel(find_files(tree), tree)
    skipped = {r.source: r.skipped[0].reason for r in results if not r.ok}
    assert skipped == {
        "bad/broken.pdf": "corrupt",
        "bad/empty.txt": "empty",
        "bad/junk.txt": "binary",
        "bad/locked.pdf": "encrypted",
    }
    by_source = {r.source: r for r in results}
    assert by_source["cn/gbk.txt"].documents[0].text.startswith("第一章 总则")
    assert by_source["docs/deep/er/notes.TXT"].documents[0].doc_id == "docs/deep/er/notes.TXT"
    recs = by_source["data/recs.jsonl"]
    assert [d.doc_id for d in recs.documents] == ["data/recs.jsonl:1", "data/recs.jsonl:3"]
    assert [s.reason for s in recs.skipped] == ["bad_record"]
    # A second run gives the same ids in the same order.
    again = [d.doc_id for r in read_folder(tree) for d in r.documents]
    assert again == [d.doc_id for r in results for d in r.documents]


def test_selection_is_validated():
    with pytest.raises(ConfigError):
        FileSelection(include="*.md")
    with pytest.raises(ConfigError):
        FileSelection(include=())
