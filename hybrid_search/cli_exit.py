"""How a command line ends on an error it expected: one line on stderr naming
what is wrong, a non-zero exit code, no traceback.

Both shells (``hybrid-search`` and ``python -m benchmarks``) run their Typer
app through ``run_app``. A missing file, folder or model (and every
``HybridSearchError``) is the user's to fix, so it is reported, not dumped;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Any

from .errors import ConfigError, HybridSearchError, InputError

__all__ = ["EXPECTED_ERRORS", "exit_code_for", "report_and_exit", "run_app"]

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    HybridSearchError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


def exit_code_for(error: BaseException) -> int:
    """2: the input or configuration is wrong (including a missing path); 1: the rest."""
    if isinstance(error, (InputError, ConfigError, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return 2
    return 1


def report_and_exit(error: BaseException, prog: str) -> None:
    message = str(error) or type(error).__name__
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(exit_code_for(error))


def run_app(app: Any, prog: str, **kwargs: Any) -> None:
    """Run a Typer app; an expected error becomes one line and an exit code."""
    try:
        app(**kwargs)
    except EXPECTED_ERRORS as error:
        report_and_exit(error, prog)
