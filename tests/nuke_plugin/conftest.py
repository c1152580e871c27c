"""Tests of the Nuke node: the recording stand-in ``fake/nuke.py`` is imported as ``nuke``."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for path in (os.path.join(HERE, "fake"), os.path.join(REPO, "nuke_plugin"), os.path.join(REPO, "tests", "service")):
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture
def fake_nuke(monkeypatch, tmp_path):
    """The stand-in, reset; settings only from the environment set here."""
    import nuke

    for var in list(os.environ):
        if var.startswith("FOCUSPULL_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("FOCUSPULL_PREFS", str(tmp_path / "prefs.json"))
    monkeypatch.setenv("FOCUSPULL_CACHE", str(tmp_path / "cache"))
    nuke.reset()
    yield nuke
    import focuspull_nuke.node as node

    node._running.clear()
