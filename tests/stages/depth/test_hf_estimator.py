"""Hugging Face depth models from a local folder: tiny random-weight configs of the real
transformers classes, saved with save_pretrained and loaded through the registry, the
CLI (`focuspull render --depth-model hf`) and a real `focuspull serve` process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from focuspull.errors import ModelError  # noqa: E402
from focuspull.stages import models  # noqa: E402
from focuspull.stages.depth.hf_estimator import (HFDepthEstimator, guided_upsample,  # noqa: E402
                                                 model_input_size)

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "service"))


def save_tiny_depth_anything(directory, *, metric=False, seed=0, processor=True):
    """Depth Anything (V2 layout: DINOv2 backbone + DPT neck/head), a few thousand weights."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=56, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14,
                                 depth_estimation_type="metric" if metric else "relative", max_depth=20)
    torch.manual_seed(seed)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(str(directory))
    if processor:
        from transformers import DPTImageProcessor

        DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                          ).save_pretrained(str(directory))
    return str(directory)


def save_tiny_dpt(directory, seed=0):
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=32,
                       patch_size=8, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                       backbone_out_indices=[0, 1, 2, 3])
    torch.manual_seed(seed)
    DPTForDepthEstimation(config).eval().save_pretrained(str(directory))
    from transformers import DPTImageProcessor

    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(str(directory))
    return str(directory)


@pytest.fixture(scope="module")
def tiny_da(tmp_path_factory):
    return save_tiny_depth_anything(tmp_path_factory.mktemp("da"))


def _frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.random((h, w, 3)).astype(np.float32) * 0.6
    rgb[:, : w // 2] *= 0.2  # a dark half: an edge for the guided upsampling
    return rgb


def test_registered_by_import_string():
    assert models.MODELS["depth"]["hf"] == "focuspull.stages.depth.hf_estimator:HFDepthEstimator"
    assert models.resolve_factory("depth", "hf") is HFDepthEstimator


def test_any_frame_size_gives_a_frame_sized_finite_disparity(tiny_da):
    estimator = models.resolve_factory("depth", "hf")(tiny_da, "cpu")
    for h, w in ((37, 61), (64, 48), (15, 200)):
        out = estimator(_frame(h, w))
        assert out.shape == (h, w) and out.dtype == np.float32 and np.isfinite(out).all()
    # The network sees multiples of the patch size, the aspect ratio kept (processor: 56 px).
    assert model_input_size(37, 61, (56, 56), True, 14) == (28, 56)  # fit the nearer side
    assert model_input_size(1080, 1920, (518, 518), True, 14) == (518, 924)
    assert model_input_size(37, 61, (32, 32), False, 8) == (32, 32)


def test_deterministic_and_batching_does_not_change_frames(tiny_da):
    estimator = HFDepthEstimator(tiny_da, "cpu", batch_size=2)
    frames = [_frame(40, 56, seed=s) for s in range(3)]
    one = [estimator(f) for f in frames]
    again = [estimator(f) for f in frames]
    batched = estimator.batch(frames)
    for a, b, c in zip(one, again, batched):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-5)
    assert not np.allclose(one[0], one[1])  # it does look at the picture


def _model_output(estimator, rgb):
    """What the network itself predicts for ``rgb`` (the processor's steps, by hand)."""
    import torch.nn.functional as F

    from focuspull.stages.depth.hf_estimator import srgb_encode

    x = srgb_encode(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    size = model_input_size(*rgb.shape[:2], estimator.target, estimator.keep_aspect_ratio, estimator.multiple)
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(estimator.mean).view(1, 3, 1, 1)
    std = torch.tensor(estimator.std).view(1, 3, 1, 1)
    with torch.no_grad():
        return estimator.model(pixel_values=(x - mean) / std).predicted_depth[:, None]


def _smooth_frame(h, w):
    yy, xx = np.mgrid[0:h, 0:w] / float(w)
    rgb = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 + 0.3 * np.sin(6 * xx)], axis=2)
    return rgb.astype(np.float32)


def test_disparity_convention_relative_kept_metric_inverted(tiny_da, tmp_path):
    rgb = _smooth_frame(42, 70)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    relative = HFDepthEstimator(tiny_da, "cpu")
    assert not relative.metric
    # Relative models (Depth Anything, DPT) predict disparity already: kept as is.
    assert torch.equal(relative.predict(tensor)[1], _model_output(relative, rgb))
    metric = HFDepthEstimator(save_tiny_depth_anything(tmp_path / "metric", metric=True, seed=3), "cpu")
    assert metric.metric
    depth_m = _model_output(metric, rgb)
    # Metric depth comes back as 1/depth: near (small depth) = large disparity.
    torch.testing.assert_close(metric.predict(tensor)[1], 1.0 / depth_m.clamp(min=1e-6))
    # ... and the guided upsampling keeps the prediction (not its inverse) at full size.
    low = _model_output(relative, rgb)
    full = torch.nn.functional.interpolate(low, size=rgb.shape[:2], mode="bilinear")[0, 0].numpy()
    assert np.corrcoef(relative(rgb).ravel(), full.ravel())[0, 1] > 0.5  # (measured 0.76)


def test_guided_upsampling_puts_the_depth_edge_on_the_image_edge():
    width, edge = 96, 53  # the image's edge is not on the low-res grid
    guide = torch.zeros(1, 1, 24, width)
    guide[..., edge:] = 1.0
    truth = guide * 0.8 + 0.1
    low = torch.nn.functional.interpolate(truth, size=(6, 24), mode="area")
    bilinear = torch.nn.functional.interpolate(low, size=(24, width), mode="bilinear", align_corners=False)
    guided = guided_upsample(low, guide)
    err_guided = (guided - truth).abs().mean().item()
    err_bilinear = (bilinear - truth).abs().mean().item()
    assert err_guided < 0.3 * err_bilinear
    step = (guided[0, 0, 12, 1:] - guided[0, 0, 12, :-1]).abs()
    assert int(step.argmax()) + 1 == edge


def test_dpt_loads_too(tmp_path):
    estimator = HFDepthEstimator(save_tiny_dpt(tmp_path / "dpt"), "cpu")
    out = estimator(_frame(30, 50))
    assert out.shape == (30, 50) and np.isfinite(out).all() and not estimator.metric


def test_missing_or_wrong_folders_say_what_to_pass_and_where_weights_come_from(tmp_path, tiny_da):
    for bad in ("", str(tmp_path / "nope")):
        with pytest.raises(ModelError) as info:
            HFDepthEstimator(bad, "cpu")
        assert "--depth-checkpoint" in info.value.hint and "never downloads" in info.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        HFDepthEstimator(str(tmp_path / "empty"), "cpu")
    # A transformers folder that is not a depth model.
    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32)).save_pretrained(str(tmp_path / "backbone"))
    with pytest.raises(ModelError, match="cannot load a depth model") as info:
        HFDepthEstimator(str(tmp_path / "backbone"), "cpu")
    assert "depth-estimation" in info.value.hint
    # Config without weights.
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(open(os.path.join(tiny_da, "config.json")).read())
    with pytest.raises(ModelError, match="no weights"):
        HFDepthEstimator(str(tmp_path / "noweights"), "cpu")


def _write_plate(directory, frames):
    from focuspull.io.images import write_image

    os.makedirs(directory, exist_ok=True)
    for f in frames:
        rgb = _frame(36, 52, seed=f)
        write_image(os.path.join(directory, f"p.{f:04d}.exr"), rgb, ["R", "G", "B"])
    return os.path.join(directory, "p.####.exr")


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "focuspull.commands.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_renders_with_the_hf_model_and_chunks_equal_one_run(tiny_da, tmp_path):
    from focuspull.io.images import read_image

    pattern = _write_plate(tmp_path / "in", range(1, 5))
    env = {**os.environ, "PYTHONPATH": str(REPO / "server"), "FOCUSPULL_CACHE_DIR": str(tmp_path / "cache")}
    common = ["--depth-model", "hf", "--depth-checkpoint", tiny_da, "--k", "8", "--focus-disparity", "0.5",
              "--stabilise", "1", "--quiet"]
    whole = _cli("render", pattern, tmp_path / "whole" / "o.####.exr", *common, env=env)
    assert whole.returncode == 0, whole.stderr
    for frames in ("1-2", "3-4"):
        done = _cli("render", pattern, tmp_path / "chunks" / "o.####.exr", *common, "--frames", frames, env=env)
        assert done.returncode == 0, done.stderr
    for f in range(1, 5):
        a = read_image(str(tmp_path / "whole" / f"o.{f:04d}.exr")).pixels
        b = read_image(str(tmp_path / "chunks" / f"o.{f:04d}.exr")).pixels
        assert np.array_equal(a, b), f"frame {f}"
    source = read_image(str(tmp_path / "in" / "p.0002.exr")).pixels
    assert not np.allclose(a[..., :3], source[..., :3], atol=1e-3)  # the model's depth did blur it
    missing = _cli("render", pattern, tmp_path / "x" / "o.####.exr", "--depth-model", "hf", "--depth-checkpoint",
                   tmp_path / "no-model", "--k", "8", "--focus-disparity", "0.5", env=env)
    assert missing.returncode != 0 and "--depth-checkpoint" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_server_renders_with_the_hf_model(tiny_da, tmp_path):
    from test_service_support import ServerProcess, tiny_clip

    from focuspull.pipeline.run import run_job
    from focuspull.spec.job import RenderJob

    root = tmp_path / "root"
    root.mkdir()
    checkpoint = save_tiny_depth_anything(root / "model")
    clip = tiny_clip([1, 2, 3], h=28, w=42)  # (its depth arrays are not used with a model)
    job = {"frames": [1, 2, 3], "depth": {"kind": "model", "model": "hf", "checkpoint_dir": "model"},
           "lens": {"mode": "artistic", "k": 6.0}, "focus": {"mode": "disparity", "disparity": 0.5}}
    srv = ServerProcess(tmp_path / "server.log", "--root", str(root),
                        env={"FOCUSPULL_CACHE_DIR": str(tmp_path / "cache")})
    try:
        with srv.client(timeout_s=120.0) as c:
            got = c.submit(job, inband=clip).result()
    finally:
        srv.kill()
    expected = run_job(RenderJob.from_dict({**job, "depth": {**job["depth"], "checkpoint_dir": checkpoint}}),
                       inband=clip).frames
    for f in (1, 2, 3):
        np.testing.assert_array_equal(got[f], expected[f])
