"""A folder in, the files to ingest out: a recursive walk filtered by
include/exclude globs, in a stable order, then each file read in turn.

Glob patterns follow .gitignore rules (via ``pathspec``), matched against the
path relative to the root: ``*.pdf`` matches at any depth, ``reports/**/*.md``
only under ``reports/``, ``drafts/`` a whole folder, and a later ``!pattern``
re-includes. Only files with a supported suffix (``FORMAT_BY_SUFFIX``) are
returned; everything else is not a document and is not reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

from hybrid_search.errors import ConfigError, InputError

from .documents import (
    FORMAT_BY_SUFFIX,
    FileReadResult,
    ReadOptions,
    Skipped,
    read_file,
    source_for,
)

__all__ = ["FileSelection", "find_files", "read_folder"]


@dataclass(frozen=True)
class FileSelection:
    """Which files under a root are ingested.

    ``include``: patterns a file must match (default: all). ``exclude``:
    patterns that drop a file or a whole folder. ``skip_hidden`` drops names
    starting with "." and Office lock files ("~$report.docx").
    ``follow_symlinks`` also descends into symlinked folders (files that are
    symlinks are always read).
    """

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    skip_hidden: bool = True
    follow_symlinks: bool = False

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigError(f"FileSelection.{name} must be a tuple of glob patterns, not a string")
            try:
                pathspec.PathSpec.from_lines("gitignore", value)
            except Exception as exc:  # pathspec raises its own error types per pattern problem
                raise ConfigError(f"FileSelection.{name} has an invalid pattern: {exc}") from None
        if not self.include:
            raise ConfigError("FileSelection.include must name at least one pattern")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$")


def find_files(root: str | Path, selection: FileSelection | None = None, skipped: list[Skipped] | None = None) -> list[Path]:
    """Supported files under ``root`` (or ``root`` itself if it is a file),
    sorted by relative path so every run sees them in the same order.

    Following symlinks, a folder link that leads back into a folder already
    walked (a loop) is not descended into; it is added to ``skipped``."""
    selection = selection or FileSelection()
    root = Path(root)
    if root.is_file():
        return [root] if root.suffix.lower() in FORMAT_BY_SUFFIX else []
    if not root.is_dir():
        raise InputError(f"{root} is neither a file nor a folder")
    include = pathspec.PathSpec.from_lines("gitignore", selection.include)
    exclude = pathspec.PathSpec.from_lines("gitignore", selection.exclude)

    found: list[tuple[str, Path]] = []
    walked: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=selection.follow_symlinks):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        walked.add(_identity(dirpath))
        # Prune in place so excluded folders are never descended into.
        dirnames[:] = [
            d
            for d in dirnames
            if not (selection.skip_hidden and _hidden(d)) and not exclude.match_file(f"{rel_dir}{d}/")
        ]
        if selection.follow_symlinks:
            dirnames[:] = [d for d in dirnames if not _loops(Path(dirpath) / d, walked, root, skipped)]
        for name in filenames:
            if selection.skip_hidden and _hidden(name):
                continue
            if Path(name).suffix.lower() not in FORMAT_BY_SUFFIX:
                continue
            rel = rel_dir + name
            if include.match_file(rel) and not exclude.match_file(rel):
                found.append((source_for(Path(dirpath) / name, root), Path(dirpath) / name))
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


def _identity(path: str | Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _loops(path: Path, walked: set[tuple[int, int]], root: Path, skipped: list[Skipped] | None) -> bool:
    """Whether the folder link ``path`` leads to a folder already walked (os.walk
    would go round until the path is too long, silently)."""
    if not path.is_symlink():
        return False
    try:
        identity = _identity(path)
    except OSError:
        return False  # dangling: os.walk does not descend either
    if identity not in walked:  # walking is top-down: every ancestor is in there
        return False
    if skipped is not None:
        skipped.append(Skipped(source_for(path, root), "symlink_loop", f"links back to {os.path.realpath(path)}"))
    return True


def read_folder(
    root: str | Path,
    options: ReadOptions | None = None,
    selection: FileSelection | None = None,
) -> Iterator[FileReadResult]:
    """Read every selected file under ``root`` in order, one result per file.

    A bad file yields a result with ``skipped`` set instead of raising, so a
    run always gets through the whole folder. Documents' ids are their paths
    relative to ``root`` (a single-file ``root`` counts from its folder).
    """
    base = Path(root) if Path(root).is_dir() else Path(root).parent
    for path in find_files(root, selection):
        yield read_file(path, options, root=base)
