"""Importing the package must not change the process: env, logging, warnings."""

import subprocess
import sys

import pytest

import hybrid_search

pytestmark = pytest.mark.unit

PROBE = r"""
import json, logging, os, sys, warnings
import numpy  # numpy adds its own warning filters on import; those are not ours
before = (dict(os.environ), list(logging.root.handlers), logging.root.level, list(warnings.filters))
import hybrid_search, hybrid_search.cli
after = (dict(os.environ), list(logging.root.handlers), logging.root.level, list(warnings.filters))
print(json.dumps([before[0] == after[0], before[1] == after[1], before[2] == after[2], before[3] == after[3]]))
"""


def test_import_has_no_side_effects():
    output = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[true, true, true, true]"


def test_public_api_is_exported():
    for name in hybrid_search.__all__:
        assert hasattr(hybrid_search, name), name
    assert issubclass(hybrid_search.ManifestMismatchError, hybrid_search.HybridSearchError)
