"""Which file a hit links to, and that nothing outside a document root is served."""

from __future__ import annotations

import pytest

from hybrid_search.api import ApiSettings
from hybrid_search.api.errors import ApiError
from hybrid_search.api.sources import servable_file, source_location, source_url

pytestmark = pytest.mark.unit


@pytest.fixture()
def settings(tmp_path):
    root = tmp_path / "handbooks"
    (root / "hr").mkdir(parents=True)
    (root / "hr" / "leave policy.pdf").write_bytes(b"%PDF-1.4 stub")
    (root / "notes.md").write_text("# Notes\n", encoding="utf-8")
    (root / ".env").write_text("SECRET=1\n", encoding="utf-8")
    (root / "tool.sh").write_text("echo hi\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("outside\n", encoding="utf-8")
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    return ApiSettings(document_roots={"handbooks": root}, dense_model=None, sparse_model=None)


@pytest.mark.parametrize(
    ("doc_id", "source", "expected"),
    [
        ("handbooks/hr/leave.pdf", "hr/leave.pdf", ("handbooks", "hr/leave.pdf")),  # hybrid-search index
        ("handbooks/hr/leave.pdf", "handbooks/hr/leave.pdf", ("handbooks", "hr/leave.pdf")),  # API paths job
        ("handbooks/handbooks/x.md", "handbooks/x.md", ("handbooks", "handbooks/x.md")),  # a folder named like the root
        ("handbooks/r17", "handbooks/records.jsonl", ("handbooks", "records.jsonl")),  # a record: its file
        ("leave.pdf", "leave.pdf", None),  # an upload: no root
        ("other/leave.pdf", "leave.pdf", None),  # not a configured root
        ("handbooks/x", "", None),
        ("handbooks/x", "elsewhere/x", None),
    ],
)
def test_source_location(doc_id, source, expected):
    assert source_location(doc_id, source, {"handbooks": object()}) == expected


def test_source_url_quotes_the_path_and_anchors_pdf_pages(settings):
    assert source_url(settings, "handbooks/hr/leave policy.pdf", "hr/leave policy.pdf", 12) == "/v1/sources/handbooks/hr/leave%20policy.pdf#page=12"
    assert source_url(settings, "handbooks/notes.md", "notes.md", 3) == "/v1/sources/handbooks/notes.md"
    # Missing, hidden, not an indexed type, or a link out of the root: no link.
    for relative in ("gone.pdf", ".env", "tool.sh", "out.txt"):
        assert source_url(settings, f"handbooks/{relative}", relative, None) is None


@pytest.mark.parametrize(
    ("root", "relative", "status"),
    [
        ("handbooks", "../secret.txt", 403),
        ("handbooks", "hr/../../secret.txt", 403),
        ("handbooks", "/etc/passwd", 403),
        ("handbooks", "~/secret.txt", 403),
        ("handbooks", "out.txt", 403),  # a symlink leading out
        ("handbooks", ".env", 403),
        ("handbooks", "hr/.hidden/x.md", 403),
        ("handbooks", "tool.sh", 403),
        ("handbooks", "hr\\..\\..\\secret.txt", 403),
        ("handbooks", "hr", 403),  # a folder has no indexed extension
        ("elsewhere", "notes.md", 403),
        ("handbooks", "gone.md", 404),
    ],
)
def test_servable_file_refuses_everything_but_indexed_files_in_the_root(settings, root, relative, status):
    with pytest.raises(ApiError) as caught:
        servable_file(settings, root, relative)
    assert caught.value.status == status


def test_servable_file_finds_the_file(settings):
    assert servable_file(settings, "handbooks", "hr/leave policy.pdf").read_bytes().startswith(b"%PDF")
