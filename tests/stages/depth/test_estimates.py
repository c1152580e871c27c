"""The estimator runs exactly once per frame; estimates are cached on disk per frame and
checkpoint, so a re-render with other lens settings does not estimate again."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from focuspull.pipeline.run import run_job
from focuspull.spec.job import RenderJob
from focuspull.stages import models
from focuspull.stages.depth.estimates import EstimateStore, checkpoint_digest, frame_digest


class CountingEstimator:
    """Disparity = a smooth function of the pixels; counts every frame it sees."""

    batch_size = 3

    def __init__(self) -> None:
        self.frames = 0
        self.batches = []

    def __call__(self, rgb):
        self.frames += 1
        return (0.2 + rgb[..., :3].mean(axis=2)).astype(np.float32)

    def batch(self, rgbs):
        self.batches.append(len(rgbs))
        return [self(rgb) for rgb in rgbs]


@pytest.fixture
def counting_model(tmp_path, monkeypatch):
    made = []

    def factory(checkpoint_dir, device):
        made.append(CountingEstimator())
        return made[-1]

    monkeypatch.setitem(models.MODELS["depth"], "test-counting", factory)
    monkeypatch.setenv("FOCUSPULL_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"version": 1}))
    return made, checkpoint


def _clip(n=7, h=24, w=32):
    rng = np.random.default_rng(0)
    base = rng.random((h, w + n, 4)).astype(np.float32)
    base[..., 3] = 1.0
    return {1001 + i: {"rgba": np.ascontiguousarray(base[:, i:i + w])} for i in range(n)}


def _job(checkpoint, k=6.0, **depth):
    return RenderJob.from_dict({"depth": {"kind": "model", "model": "test-counting",
                                          "checkpoint_dir": str(checkpoint), **depth},
                                "lens": {"mode": "artistic", "k": k},
                                "focus": {"mode": "disparity", "disparity": 0.5}})


def test_estimator_runs_once_per_frame_and_not_again_for_other_lens_settings(counting_model):
    made, checkpoint = counting_model
    clip = _clip()
    first = run_job(_job(checkpoint, stabilise_window=2), inband=clip).frames
    assert made[-1].frames == len(clip)  # clip range + 7 renders + stabiliser: still once each
    assert made[-1].batches == [3, 3]  # batched over frames (the 7th alone: a plain call)
    again = run_job(_job(checkpoint, k=12.0, stabilise_window=2), inband=clip).frames
    assert len(made) == 2 and made[1].frames == 0  # a fresh run, nothing estimated again
    assert not np.array_equal(first[1004], again[1004])  # the lens did change the render
    # Another checkpoint (retrained weights) is estimated afresh.
    (checkpoint / "config.json").write_text(json.dumps({"version": 2}))
    run_job(_job(checkpoint), inband=clip)
    assert sum(m.frames for m in made) == 2 * len(clip)


def test_cached_estimates_give_the_same_render(counting_model):
    made, checkpoint = counting_model
    clip = _clip()
    a = run_job(_job(checkpoint), inband=clip).frames
    b = run_job(_job(checkpoint), inband=clip).frames
    assert sum(m.frames for m in made) == len(clip)
    for f in clip:
        assert np.array_equal(a[f], b[f])


def test_store_keys_follow_pixels_and_checkpoint(tmp_path):
    estimator = CountingEstimator()
    store = EstimateStore(estimator, "m", "", root=str(tmp_path))
    rgb = np.random.default_rng(1).random((8, 9, 3)).astype(np.float32)
    a = store.get(rgb)
    b = store.get(rgb.copy())
    assert estimator.frames == 1 and np.array_equal(a, b)
    # A fresh store over the same folder reads the file instead of estimating.
    again = EstimateStore(estimator, "m", "", root=str(tmp_path))
    assert np.array_equal(again.get(rgb), a) and estimator.frames == 1 and again.loaded == 1
    # A held frame inside one batch is estimated once.
    held = EstimateStore(CountingEstimator(), "n", "", root=None)
    out = held.get_many([rgb * 2, rgb * 2, rgb * 3])
    assert held.estimator.frames == 2 and np.array_equal(out[0], out[1])
    assert frame_digest(rgb) != frame_digest(rgb + np.float32(1e-3))
    assert not [n for n in os.listdir(tmp_path / os.listdir(tmp_path)[0]) if n.startswith(".tmp")]


def test_checkpoint_digest_changes_with_the_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "w.bin").write_bytes(b"1234")
    before = checkpoint_digest(str(tmp_path))
    assert checkpoint_digest(str(tmp_path)) == before
    (tmp_path / "w.bin").write_bytes(b"123456")
    assert checkpoint_digest(str(tmp_path)) != before


def test_an_estimator_returning_the_wrong_size_is_refused(tmp_path):
    from focuspull.errors import DepthError

    store = EstimateStore(lambda rgb: np.zeros((3, 3), np.float32), "bad", "", root=None)
    with pytest.raises(DepthError) as info:
        store.get(np.zeros((4, 5, 3), np.float32))
    assert info.value.hint
