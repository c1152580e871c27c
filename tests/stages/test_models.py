"""The one model registry (import strings) and the per-device cache the server keeps."""
from __future__ import annotations

import numpy as np
import pytest

from focuspull.errors import ModelError
from focuspull.stages import models
from focuspull.stages.models import MODELS, ModelCache, register_model, resolve_factory

CALLS = []


def counting_estimator(checkpoint_dir, device):
    """Registered by import string in the tests below: counts how often it is built."""
    CALLS.append((checkpoint_dir, device))
    return lambda rgb: 1.0 + rgb[..., 1].astype(np.float32)


@pytest.fixture
def counting(tmp_path):
    CALLS.clear()
    register_model("depth", "test-counting", f"{__name__}:counting_estimator")
    yield tmp_path
    MODELS["depth"].pop("test-counting", None)


def test_the_shipped_estimator_is_registered_by_import_string():
    assert MODELS["depth"]["tiny"] == "focuspull.stages.depth.sources:tiny_estimator"
    assert callable(resolve_factory("depth", "tiny"))


def test_a_model_loads_once_per_device_and_checkpoint(counting):
    cache = ModelCache("cpu")
    a = cache.get("depth", "test-counting", str(counting))
    b = cache.get("depth", "test-counting", str(counting))
    assert a is b and cache.loads == 1 and CALLS == [(str(counting), "cpu")]
    (counting / "other").mkdir()
    cache.get("depth", "test-counting", str(counting / "other"))
    assert cache.loads == 2 and cache.loaded() == ["depth:test-counting"]


def test_the_server_worker_keeps_the_depth_model_across_jobs(counting):
    """Two model-depth jobs on one worker (the real PipelineRunner, in-band): one load."""
    from focuspull.service.jobs import Job
    from focuspull.service.worker import PipelineRunner
    from focuspull.spec.job import RenderJob

    runner = PipelineRunner("cpu")
    rng = np.random.default_rng(0)
    clip = {f: {"rgba": rng.random((12, 16, 4), dtype=np.float32)} for f in (1, 2)}
    spec = RenderJob.from_dict({"depth": {"kind": "model", "model": "test-counting",
                                          "checkpoint_dir": str(counting)},
                                "lens": {"mode": "artistic", "size_px": 2.0},
                                "focus": {"mode": "point", "point_x": 4, "point_y": 4}})
    for _ in range(2):
        job = Job(id="j", client=b"c", spec=spec, inband=clip)
        out = runner(job, on_event=lambda e: None, cancelled=lambda: False)
        assert sorted(out.frames) == [1, 2]
    assert len(CALLS) == 1 and runner.cache.loads == 1
    assert "depth:test-counting" in runner.models() and "refine" in runner.stages()  # the refiner is registered


def test_unknown_and_unimportable_models_are_model_errors():
    with pytest.raises(ModelError, match="use one of"):
        resolve_factory("depth", "no-such")
    register_model("refine", "test-broken", "focuspull.no_such_module:factory")
    try:
        with pytest.raises(ModelError, match="cannot load"):
            resolve_factory("refine", "test-broken")
    finally:
        MODELS["refine"].pop("test-broken")
    with pytest.raises(ModelError):
        register_model("depth", "x", "not-an-import-string")
    with pytest.raises(ModelError):
        register_model("nonsense", "x", "a:b")
    # the one-step refiner (docs/refine.md), once per precision of job field refine.precision
    assert models.model_names("refine") == ("onestep", "onestep-bf16", "onestep-fp32")
