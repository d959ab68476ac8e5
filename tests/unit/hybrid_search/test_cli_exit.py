"""Expected errors end a command with one line and an exit code; bugs keep their traceback."""

import pytest
import typer

from hybrid_search.cli_exit import exit_code_for, run_app
from hybrid_search.errors import ConfigError, ModelLoadError, StoreError

pytestmark = pytest.mark.unit


def _app_raising(error: BaseException) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.command()
    def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error, code",
    [
        (FileNotFoundError("no such file 'x.toml'"), 2),
        (NotADirectoryError("'x' is not a folder"), 2),
        (ConfigError("bad setting"), 2),
        (ModelLoadError("no model folder at '/m'"), 1),
        (StoreError("Milvus failed"), 1),
        (PermissionError("cannot write"), 1),
    ],
)
def test_expected_errors_print_one_line_and_exit(error, code, capsys):
    with pytest.raises(SystemExit) as caught:
        run_app(_app_raising(error), "prog", args=[])
    assert caught.value.code == code == exit_code_for(error)
    assert capsys.readouterr().err == f"prog: error: {error}\n"


def test_bugs_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        run_app(_app_raising(ZeroDivisionError("a bug")), "prog", args=[])
