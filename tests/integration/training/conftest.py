"""Fixtures for the training tests: one definition, in tests/training_fixtures.py."""

from tests.training_fixtures import _one_torch_thread, tiny_beir  # noqa: F401 - pytest finds fixtures by name here
