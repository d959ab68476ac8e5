"""Real processes for the interruption tests: a CLI run in its own process
group, killed with SIGKILL (Milvus Lite's server included) at a chosen point,
and the release of this process's Milvus Lite server so another can open the file."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def release_milvus_lite(db: Path) -> None:
    """Stop this process's Milvus Lite server for ``db`` (pymilvus keeps one per
    file until the process exits, holding the file's lock), so that a CLI
    process can open the file."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(db))


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a server process, killing it when it does not stop in 20 s."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def group_alive(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


class CliProcess:
    """A real CLI process in its own process group, its stderr collected as it comes."""

    def __init__(self, argv: list[str]) -> None:
        env = dict(os.environ, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", NO_COLOR="1", COLUMNS="120")
        self.proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.err = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            with self._lock:
                self.err += chunk.decode("utf-8", "replace")

    def stderr(self) -> str:
        with self._lock:
            return self.err

    def kill_when(self, condition, timeout: float = 240.0) -> str:
        """SIGKILL the whole group as soon as ``condition(stderr)`` holds; returns
        the stderr seen at that moment. Fails if the process ends first."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.stderr()
            if condition(seen):
                os.killpg(self.proc.pid, signal.SIGKILL)
                break
            if self.proc.poll() is not None:
                pytest.fail(f"the process ended before it could be killed:\n{seen[-3000:]}")
            if time.monotonic() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                pytest.fail(f"the process never reached the kill point:\n{seen[-3000:]}")
            time.sleep(0.02)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL, "the process ended on its own"
        # Milvus Lite's server is a child in the same group: make sure it is
        # gone before anything opens the file again.
        deadline = time.monotonic() + 30
        while group_alive(self.proc.pid):
            assert time.monotonic() < deadline, f"processes of the killed run survive: {group_alive(self.proc.pid)}"
            time.sleep(0.05)
        self._reader.join(timeout=10)
        return seen
