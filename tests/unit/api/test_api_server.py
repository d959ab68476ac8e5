"""run_server's process set-up, with uvicorn and the app replaced (nothing is served)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# A fresh interpreter: whether torch is imported by then, and what the OpenMP
# runtime would read when it loads, depend on the process's whole history.
_PROBE = """
import os, sys
import uvicorn
import hybrid_search.api.app as app_module
from hybrid_search.api import ApiSettings
from hybrid_search.api.server import run_server

seen = {}
app_module.create_app = lambda settings, record_serving: object()
uvicorn.run = lambda *args, **kwargs: seen.update(
    policy=os.environ.get("OMP_WAIT_POLICY"), torch_imported="torch" in sys.modules
)
run_server(ApiSettings(store_uri=sys.argv[1]))
print(seen["policy"], seen["torch_imported"])
"""


def _serve_and_report(tmp_path, policy: str | None) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "kb.db")], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_server_makes_openmp_threads_wait_passively_before_torch_is_imported(tmp_path):
    assert _serve_and_report(tmp_path, None) == ["PASSIVE", "False"]


def test_a_users_own_openmp_wait_policy_is_kept(tmp_path):
    assert _serve_and_report(tmp_path, "ACTIVE") == ["ACTIVE", "False"]
