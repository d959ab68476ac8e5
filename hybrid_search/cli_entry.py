"""The ``hybrid-search`` program: a search that a running ``hybrid-search
serve`` answers is sent there and printed before the full command line
(Typer, pydantic, the engine) is imported; everything else runs the full
command line (``hybrid_search.cli``) unchanged.

Importing Typer and building the command line takes most of a second, several
times the whole search through a server. So this module reads the common
spellings of ``hybrid-search [GLOBAL OPTIONS] search QUERY [OPTIONS]`` itself
(``--name value``, ``--name=value``, ``-k 5``, flags) and leaves anything else
to the full command line: ``--help``, joined short options (``-k5``), ``--``,
an option it does not know, a value that starts with ``-`` or that is not a
plain number where one is due. From the flags on, both run the same code
(``cli_search``): the same settings, request, server answer and rendering.
Anything other than the server's answer (no server, another plan, an error,
a refusal) goes to the full command line, with what the server said, so it
is reported (and ``--verbose`` explained) exactly as it always is, and the
server is never asked twice.
"""

from __future__ import annotations

import io
import os
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .cli_search import ServerOutcome

__all__ = ["GLOBAL_VALUE_OPTIONS", "SEARCH_FLAG_OPTIONS", "SEARCH_VALUE_OPTIONS", "main", "read_search_argv"]

# The options of `hybrid-search` itself (before the command) that take a value.
GLOBAL_VALUE_OPTIONS: dict[str, str] = {
    "--config": "config",
    "-c": "config",
    "--uri": "uri",
    "--token": "token",
    "--device": "device",
    "--backend": "backend",
    "--quantize": "quantize",
}
# `search`'s options that take a value: the SearchFlags field and its type.
SEARCH_VALUE_OPTIONS: dict[str, tuple[str, type]] = {
    "--collection": ("collection", str),
    "-C": ("collection", str),
    "-k": ("k", int),
    "--paths": ("paths", str),
    "--depth": ("depth", int),
    "--fusion": ("fusion", str),
    "--rrf-k": ("rrf_k", int),
    "--normalization": ("normalization", str),
    "--weights": ("weights", str),
    "--filter": ("filter", list),
    "-f": ("filter", list),
    "--rerank-model": ("rerank_model", str),
    "--rerank-kind": ("rerank_kind", str),
    "--rerank-top-n": ("rerank_top_n", int),
    "--min-rerank-score": ("min_rerank_score", float),
    "--rerank-first-stage-weight": ("rerank_first_stage_weight", float),
}
# `search`'s flags: the SearchFlags field and the value the flag sets.
SEARCH_FLAG_OPTIONS: dict[str, tuple[str, bool]] = {
    "--rerank": ("rerank", True),
    "--no-rerank": ("rerank", False),
    "--json": ("as_json", True),
    "--explain": ("explain", True),
    "--no-explain": ("explain", False),
    "--collapse": ("collapse", True),
    "--no-collapse": ("collapse", False),
    "--local": ("local", True),
    "--verbose": ("verbose", True),
    "-v": ("verbose", True),
}
# Numbers as every parser reads them alike (no sign, exponent, '_' or spaces).
_PLAIN_NUMBER = {int: re.compile(r"[0-9]+"), float: re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+")}


def read_search_argv(argv: list[str]) -> tuple[dict[str, str], dict[str, Any]] | None:
    """The global options and the search flags (SearchFlags' fields) of a
    plainly spelled ``search`` command line; None for anything else."""
    global_values: dict[str, str] = {}
    position = 0
    while position < len(argv) and argv[position].startswith("-"):
        name, value, position = _option(argv, position, GLOBAL_VALUE_OPTIONS)
        if name is None or value is None:
            return None
        global_values[GLOBAL_VALUE_OPTIONS[name]] = value
    if position >= len(argv) or argv[position] != "search":
        return None
    values: dict[str, Any] = {}
    queries: list[str] = []
    position += 1
    while position < len(argv):
        token = argv[position]
        if not token.startswith("-"):
            queries.append(token)
            position += 1
            continue
        if token in SEARCH_FLAG_OPTIONS:
            field_name, flag_value = SEARCH_FLAG_OPTIONS[token]
            values[field_name] = flag_value
            position += 1
            continue
        name, value, position = _option(argv, position, SEARCH_VALUE_OPTIONS)
        if name is None or value is None:
            return None
        field_name, kind = SEARCH_VALUE_OPTIONS[name]
        if kind is list:
            values[field_name] = (*values.get(field_name, ()), value)
        elif kind in _PLAIN_NUMBER:
            if not _PLAIN_NUMBER[kind].fullmatch(value):
                return None
            values[field_name] = kind(value)
        else:
            values[field_name] = value
    if len(queries) != 1:
        return None
    values["query"] = queries[0]
    return global_values, values


def _option(argv: list[str], position: int, known: dict[str, Any]) -> tuple[str | None, str | None, int]:
    """The option at ``position`` with its value (``--name=value`` or
    ``--name value``), and where the next token is; None when not plain."""
    token = argv[position]
    name, equals, value = token.partition("=")
    if equals and name.startswith("--") and name in known:
        return name, value, position + 1
    if token in known and position + 1 < len(argv) and not argv[position + 1].startswith("-"):
        return token, argv[position + 1], position + 2
    return None, None, position


def _search_through_server(global_values: dict[str, str], values: dict[str, Any]) -> tuple[bool, ServerOutcome | None]:
    """Print the running server's answer to this search (True), or say what the
    server said (None: it was not asked) for the full command line to go on with."""
    from pathlib import Path

    from .cli_search import (
        SearchFlags,
        ServerOutcome,
        print_answer,
        print_note,
        search_request,
        server_answer,
    )
    from .errors import HybridSearchError
    from .settings import LayeredSettings

    flags = SearchFlags(**values)
    if flags.local:
        return False, None
    try:
        config = global_values.get("config")
        others = {key: value for key, value in global_values.items() if key != "config"}
        settings = LayeredSettings.load(Path(config) if config is not None else None, **others)
        request = search_request(settings, flags)
    except Exception:  # noqa: BLE001 - the full command line meets it again and reports it as always
        return False, None
    try:
        answer = server_answer(request)
    except HybridSearchError as error:
        return False, ServerOutcome(request, error=error)
    if answer.body is None:
        return False, ServerOutcome(request, answer=answer)
    if flags.verbose or not flags.as_json:
        from rich.console import Console  # only to print text: --json needs none
    if flags.verbose:
        print_note(Console(stderr=True), answer)
    print_answer(None if flags.as_json else Console(), answer.body, as_json=flags.as_json, explain=flags.explain)
    return True, None


def main() -> None:
    asked = None
    parsed = read_search_argv(sys.argv[1:])
    if parsed is not None:
        try:
            answered, asked = _search_through_server(*parsed)
        except KeyboardInterrupt:
            sys.exit(130)  # as the full command line ends on Ctrl-C: quietly, 130
        except BrokenPipeError:
            _reader_gone()
        if answered:
            return
    from .cli import main as full_command_line

    full_command_line(asked=asked)


def _reader_gone() -> NoReturn:
    """The output's reader went away (``| head``): exit 1 quietly, as the full
    command line does, with stdout on devnull so the final flush cannot fail."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    sys.exit(1)
