"""Shared test setup."""

import pytest


@pytest.fixture(autouse=True)
def _not_strict(monkeypatch):
    """CI exports D2F_STRICT_PLUGINS=1 (so `d2f check` fails on any broken built-in plugin); tests
    build deliberately broken plugins and set strict mode themselves where they test it."""
    monkeypatch.delenv("D2F_STRICT_PLUGINS", raising=False)
