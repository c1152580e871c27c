import os
import sys

# As the focuspull command does (commands/cli.py quiet_openmp_waits), before anything loads
# torch: idle OpenMP threads sleep.  With spinning waits the in-process torch tests slowed
# down more than tenfold when another torch process shared the 2 cores (the tiny training
# test passed 600 s instead of ~40 s), so the suite's duration depended on the machine's load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Tests import their helpers (reference_render, ...) from this folder.
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _depth_cache_in_a_temp_dir(tmp_path_factory):
    """Depth estimates cache on disk (focuspull.stages.depth.estimates); keep the tests'
    out of the user's ~/.cache.  Servers started by tests inherit it."""
    previous = os.environ.get("FOCUSPULL_CACHE_DIR")
    os.environ["FOCUSPULL_CACHE_DIR"] = str(tmp_path_factory.mktemp("focuspull-cache"))
    yield
    if previous is None:
        os.environ.pop("FOCUSPULL_CACHE_DIR", None)
    else:
        os.environ["FOCUSPULL_CACHE_DIR"] = previous
