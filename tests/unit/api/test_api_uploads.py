"""Upload names, type checks and server paths: nothing escapes its folder."""

from __future__ import annotations

import io

import pytest

from hybrid_search.api import ApiSettings
from hybrid_search.api.errors import ApiError
from hybrid_search.api.uploads import (
    UploadStaging,
    check_upload_type,
    collect_files,
    resolve_under_root,
    safe_file_name,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("my notes (v2).md", "my notes (v2).md"),
        ("数据 报告.txt", "数据 报告.txt"),
        ("we;rd|na*me?.txt", "we_rd_na_me_.txt"),
        ("trailing dots...", "trailing dots"),
        ("e\u0301.txt", "\u00e9.txt"),  # NFC
        ("???", "_"),  # then refused by the extension check
    ],
)
def test_safe_names(name, expected):
    assert safe_file_name(name) == expected


def test_long_names_keep_their_extension():
    name = safe_file_name("x" * 500 + ".md")
    assert name.endswith(".md") and len(name.encode()) <= 200


@pytest.mark.parametrize(
    "name", ["", None, "../a.txt", "a/b.txt", "a\\b.txt", "..", ".", ".env", ".hidden.md", "a\x00.txt", "a\nb.txt", "a\u202e.txt", "a\u200b.txt"]
)
def test_refused_names(name):
    with pytest.raises(ApiError) as caught:
        safe_file_name(name)
    assert caught.value.status == 422 and caught.value.field == "files"


def test_type_checks():
    settings = ApiSettings()
    check_upload_type("a.pdf", "application/pdf", b"%PDF-1.7", settings)
    check_upload_type("a.md", "application/octet-stream", b"# x", settings)
    check_upload_type("a.txt", "text/plain; charset=utf-8", b"x", settings)
    for name, ctype, head in [("a.exe", None, b"MZ"), ("a.txt", "image/png", b"x"), ("a.pdf", "application/pdf", b"MZ"), ("a.docx", None, b"text")]:
        with pytest.raises(ApiError) as caught:
            check_upload_type(name, ctype, head, settings)
        assert caught.value.status == 415


def test_staging_writes_only_inside_its_folder(tmp_path):
    settings = ApiSettings(upload_dir=tmp_path / "up", max_upload_bytes=1024)
    staging = UploadStaging(settings)
    folder = staging.new_folder()
    assert folder.parent == (tmp_path / "up").resolve()
    assert staging.save(folder, "a.txt", io.BytesIO(b"hello"), 1024) == 5
    with pytest.raises(ApiError) as caught:
        staging.save(folder, "big.txt", io.BytesIO(b"x" * 2048), 1024)
    assert caught.value.status == 413
    with pytest.raises(FileExistsError):
        staging.save(folder, "a.txt", io.BytesIO(b"again"), 1024)
    with pytest.raises(ApiError):
        staging.save(folder, "../escape.txt", io.BytesIO(b"x"), 1024)
    assert not (tmp_path / "up" / "escape.txt").exists()


def test_paths_stay_under_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.md").write_text("a")
    (root / "sub" / "b.exe").write_text("b")
    (root / ".git").mkdir()
    (root / ".git" / "c.md").write_text("c")
    (tmp_path / "secret.txt").write_text("s")
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path)
    root = root.resolve()
    assert resolve_under_root(root, "sub/a.md", field="p") == root / "sub" / "a.md"
    assert resolve_under_root(root, ".", field="p") == root
    for bad, status in [("../secret.txt", 403), ("/etc/passwd", 403), ("out.txt", 403), ("outdir/secret.txt", 403), ("sub/../../secret.txt", 403), ("nope", 404), ("a\x00b", 422)]:
        with pytest.raises(ApiError) as caught:
            resolve_under_root(root, bad, field="p")
        assert caught.value.status == status, bad
    files = collect_files(root, root, ApiSettings(), limit=100)
    assert [p.relative_to(root).as_posix() for p in files] == ["sub/a.md"]
