"""Per-clip normalisation of relative depth and the estimator registry."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from focuspull.stages.depth import sources as depth
from focuspull.errors import DepthError, ModelError


def _ramp_clip(n_frames=6, shape=(40, 60), seed=0):
    rng = np.random.default_rng(seed)
    base = np.linspace(0.0, 1.0, shape[1], dtype=np.float32)[None, :].repeat(shape[0], 0)
    # Every frame has its own offset: per-frame normalisation would erase it.
    return [(base * 10.0 + 3.0 * i + rng.normal(0, 0.01, shape)).astype(np.float32)
            for i in range(n_frames)]


def test_range_is_pooled_over_the_whole_clip_not_per_frame():
    frames = _ramp_clip()
    clip_range = depth.relative_range(frames)
    pooled = np.concatenate([f.ravel() for f in frames])
    # The grid sample's percentiles track the full pooled percentiles closely.
    assert clip_range.low == pytest.approx(np.percentile(pooled, 1), abs=0.3)
    assert clip_range.high == pytest.approx(np.percentile(pooled, 99), abs=0.3)
    normed = [depth.normalise_relative(f, clip_range) for f in frames]
    # The clip-wide offset survives: later frames are nearer (larger) on average.
    means = [float(n.mean()) for n in normed]
    assert all(b > a + 0.05 for a, b in zip(means, means[1:]))
    for n in normed:
        assert n.dtype == np.float32 and n.min() >= 0.0 and n.max() <= 1.0


def test_range_does_not_depend_on_frame_order_and_ignores_outliers():
    frames = _ramp_clip()
    spiked = [f.copy() for f in frames]
    spiked[2][0, 0] = 1e6  # one crazy pixel must not set the range
    spiked[3][5, 5] = np.nan
    a = depth.relative_range(spiked)
    b = depth.relative_range(list(reversed(spiked)))
    assert a == b
    assert a.high < 30.0


def test_normalise_maps_range_to_unit_interval_near_is_one():
    clip_range = depth.ClipRange(low=2.0, high=6.0)
    d = np.array([[2.0, 4.0, 6.0, 10.0, -1.0]], np.float32)
    np.testing.assert_allclose(depth.normalise_relative(d, clip_range),
                               [[0.0, 0.5, 1.0, 1.0, 0.0]], atol=1e-7)


def test_flat_clip_maps_to_half():
    flat = [np.full((8, 8), 3.0, np.float32)] * 3
    clip_range, normed = depth.normalise_relative_clip(flat)
    assert clip_range.low == clip_range.high == 3.0
    assert all(np.all(n == 0.5) for n in normed)


def test_clip_normaliser_rejects_size_change_and_empty_clip():
    normaliser = depth.ClipNormaliser()
    with pytest.raises(DepthError) as info:
        normaliser.clip_range()
    assert info.value.hint
    normaliser.add(np.zeros((4, 4), np.float32))
    with pytest.raises(DepthError, match="change size"):
        normaliser.add(np.zeros((5, 4), np.float32))


def test_importing_depth_and_focus_modules_does_not_import_torch():
    code = ("import sys, focuspull, focuspull.stages.depth.sources, focuspull.stages.depth.stabilise, focuspull.stages.focus, "
            "focuspull.stages.render.setup_view; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tiny_estimator_roundtrip_through_registry(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = depth.TinyDepthNet({"width": 8, "blocks": 2})
    net.save_pretrained(str(tmp_path))
    assert (tmp_path / "config.json").is_file()
    estimator = depth.get_estimator("tiny", str(tmp_path), "cpu")
    rgb = np.random.default_rng(1).random((32, 48, 3), dtype=np.float32)
    out = estimator(rgb)
    assert out.shape == (32, 48) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # The loaded weights are the saved ones: same output as the in-memory model.
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None])[0, 0].numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    # Each call builds a fresh instance (no global singleton).
    assert depth.get_estimator("tiny", str(tmp_path)) is not estimator


def test_missing_checkpoint_raises_model_error_with_hint(tmp_path):
    with pytest.raises(ModelError) as info:
        depth.get_estimator("tiny", str(tmp_path / "nope"), "cpu")
    assert "does not exist" in info.value.message and info.value.hint
    with pytest.raises(ModelError, match="no checkpoint directory"):
        depth.get_estimator("tiny", "", "cpu")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ModelError, match="config.json"):
        depth.get_estimator("tiny", str(tmp_path / "empty"), "cpu")


def test_missing_weights_and_unknown_estimator(tmp_path):
    pytest.importorskip("torch")
    depth.TinyDepthNet({"width": 4, "blocks": 1}).save_pretrained(str(tmp_path))
    for name in os.listdir(tmp_path):
        if name != "config.json":
            os.remove(tmp_path / name)
    with pytest.raises(ModelError, match="no weights") as info:
        depth.get_estimator("tiny", str(tmp_path))
    assert info.value.hint
    with pytest.raises(ModelError) as info:
        depth.get_estimator("no-such-model", str(tmp_path))
    assert "tiny" in info.value.hint


def test_registry_builds_through_registered_factory():
    calls = []

    def factory(checkpoint_dir, device):
        calls.append((checkpoint_dir, device))
        return lambda rgb: rgb[..., 0]

    depth.register_estimator("test-luma", factory)
    try:
        est = depth.get_estimator("test-luma", "/ckpt", "cpu")
        assert calls == [("/ckpt", "cpu")]
        assert est(np.ones((2, 3, 3), np.float32)).shape == (2, 3)
        assert "test-luma" in depth.estimator_names()
    finally:
        from focuspull.stages.models import MODELS

        MODELS["depth"].pop("test-luma", None)
