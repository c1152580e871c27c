"""Video Depth Anything (``--depth-model vda``): a tiny random-weight config of focuspull's own
module, saved as a state dict in the published key layout, loaded through the registry and
the CLI; windows with overlap, any frame size, determinism and chunk invariance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from focuspull.errors import ModelError  # noqa: E402
from focuspull.stages import models  # noqa: E402
from focuspull.stages.depth import video_depth_anything as vda  # noqa: E402

REPO = Path(__file__).resolve().parents[3]

#: A tiny config: ViT with 32-wide tokens, 2 blocks, 2 heads, patch 14; head 32 features.
TINY = {"embed_dim": 32, "depth": 2, "grid": 37, "num_heads": 2, "layers": [0, 1, 1, 1], "features": 32,
        "out_channels": [16, 16, 32, 32], "temporal_heads": 8, "norm_groups": 32, "max_frames": 32,
        "input_size": 28, "window": 6, "overlap": 2}
OVERRIDES = {k: TINY[k] for k in ("num_heads", "layers", "input_size", "window", "overlap")}


def save_tiny_vda(directory, seed=0, name="video_depth_anything_vits.pth", overrides=OVERRIDES):
    torch.manual_seed(seed)
    net = vda.build_network(TINY)
    state = net.state_dict()
    # The published motion modules start at zero (zero_initialize): give them weights so the
    # temporal path matters.
    for key, value in state.items():
        if key.endswith("proj_out.weight") or key.endswith("proj_out.bias"):
            value.normal_(0.0, 0.2)
        if key.endswith("output_conv2.2.bias"):
            value.fill_(0.5)  # keep the final ReLU mostly open
    os.makedirs(directory, exist_ok=True)
    torch.save(state, os.path.join(directory, name))
    if overrides is not None:
        with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as fh:
            json.dump(overrides, fh)
    return str(directory)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_vda(tmp_path_factory.mktemp("vda"))


@pytest.fixture(scope="module")
def estimator(tiny):
    return models.resolve_factory("depth", "vda")(tiny, "cpu")


def _clip(n, h=30, w=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((h, w, 3)).astype(np.float32) * 0.7
    frames = []
    for t in range(n):
        rgb = np.roll(base, t, axis=1).copy()
        rgb[:, : w // 3] *= 0.3 + 0.05 * t
        frames.append(rgb)
    return frames


def test_registered_and_the_published_key_layout():
    assert models.MODELS["depth"]["vda"] == \
        "focuspull.stages.depth.video_depth_anything:VideoDepthAnythingEstimator"
    keys = set(vda.build_network(TINY).state_dict())
    for key in ("pretrained.cls_token", "pretrained.pos_embed", "pretrained.mask_token",
                "pretrained.patch_embed.proj.weight", "pretrained.blocks.0.attn.qkv.weight",
                "pretrained.blocks.1.ls2.gamma", "pretrained.blocks.0.mlp.fc1.weight", "pretrained.norm.weight",
                "head.projects.0.weight", "head.resize_layers.0.weight", "head.resize_layers.3.weight",
                "head.scratch.layer4_rn.weight", "head.scratch.refinenet1.resConfUnit2.conv1.weight",
                "head.scratch.output_conv1.weight", "head.scratch.output_conv2.2.weight",
                "head.motion_modules.0.temporal_transformer.norm.weight",
                "head.motion_modules.0.temporal_transformer.proj_in.weight",
                "head.motion_modules.3.temporal_transformer.proj_out.bias",
                "head.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight",
                "head.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_out.0.bias",
                "head.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe",
                "head.motion_modules.0.temporal_transformer.transformer_blocks.0.norms.1.weight",
                "head.motion_modules.0.temporal_transformer.transformer_blocks.0.ff.net.0.proj.weight",
                "head.motion_modules.0.temporal_transformer.transformer_blocks.0.ff.net.2.weight",
                "head.motion_modules.0.temporal_transformer.transformer_blocks.0.ff_norm.weight"):
        assert key in keys, key
    # Published details: no bias on to_q/k/v, no bias on layerN_rn, no readout projections.
    assert not any(k.endswith(("to_q.bias", "to_k.bias", "to_v.bias", "layer1_rn.bias")) for k in keys)
    assert not any("readout" in k or "resize_layers.2" in k for k in keys)
    # The published Small's widths, read back from shapes.
    small = vda.infer_config(vda.build_network({**TINY, "embed_dim": 384, "depth": 12, "num_heads": 6,
                                                "features": 64, "out_channels": [48, 96, 192, 384],
                                                "layers": [2, 5, 8, 11]}).state_dict())
    assert small["num_heads"] == 6 and small["layers"] == [2, 5, 8, 11] and small["max_frames"] == 32
    assert small["out_channels"] == [48, 96, 192, 384] and small["features"] == 64 and small["grid"] == 37


def test_any_size_is_deterministic_and_finite(estimator):
    frames = _clip(3, 50, 70)
    out = estimator.clip(frames)
    assert len(out) == 3 and all(d.shape == (50, 70) and d.dtype == np.float32 for d in out)
    assert all(np.isfinite(d).all() and d.min() >= 0 for d in out)
    assert np.array_equal(np.stack(out), np.stack(estimator.clip(frames)))
    assert np.std(out[0]) > 0
    assert estimator.input_size(50, 70) == (28, 42) and estimator.input_size(30, 100)[0] % 14 == 0


def test_windows_overlap_and_are_joined(estimator):
    # window 6, overlap 2 -> windows at 0, 4, 8: an 11-frame clip spans three windows.
    assert vda.window_starts(11, 6, 2) == [0, 4, 8]
    assert vda.window_starts(10, 6, 2) == [0, 4] and vda.window_starts(3, 6, 2) == [0]
    frames = _clip(11)
    out = np.stack(estimator.clip(frames))
    assert out.shape == (11, 30, 40) and np.isfinite(out).all()
    # The temporal layers see neighbours: frame 0 alone differs from frame 0 within the clip.
    assert not np.allclose(estimator.clip(frames[:1])[0], out[0])
    # Assembly: a window that is a scaled, shifted copy is fitted back exactly, and the
    # overlap is a cross-fade of the two.
    rng = np.random.default_rng(1)
    truth = rng.random((10, 2, 3)) + 0.5
    windows = [truth[0:6], truth[4:10] * 3.0 + 0.2, np.concatenate([truth[8:10], truth[9:10].repeat(4, 0)]) / 2]
    joined = vda.assemble_windows(windows, [0, 4, 8], 10, 2)
    assert np.allclose(joined, truth, atol=1e-5)
    second = truth[4:10] + rng.normal(0.0, 0.05, truth[4:10].shape)  # not an affine copy
    joined = vda.assemble_windows([truth[0:6], second, truth[8:10].repeat(3, 0)], [0, 4, 8], 10, 2)
    design = np.stack([second[:2].ravel(), np.ones(12)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, truth[4:6].ravel(), rcond=None)
    fitted = second * scale + shift
    assert np.allclose(joined[4], truth[4] * 2 / 3 + fitted[0] / 3, atol=1e-5)
    assert np.allclose(joined[5], truth[5] / 3 + fitted[1] * 2 / 3, atol=1e-5)
    assert np.allclose(joined[6:8], fitted[2:4], atol=1e-5)
    assert np.allclose(joined[:4], truth[:4])  # before the overlap: the first window only


def test_bad_folders_say_where_weights_come_from(tmp_path):
    factory = models.resolve_factory("depth", "vda")
    with pytest.raises(ModelError) as info:
        factory(str(tmp_path / "absent"), "cpu")
    assert "absent" in info.value.message and "never downloads" in info.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError) as info:
        factory(str(tmp_path / "empty"), "cpu")
    assert "video_depth_anything_vits.pth" in info.value.message
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    torch.save({"encoder.weight": torch.zeros(3)}, wrong / "model.pth")
    with pytest.raises(ModelError) as info:
        factory(str(wrong), "cpu")
    assert "not a Video Depth Anything checkpoint" in info.value.message and "--depth-checkpoint" in info.value.hint
    # A state dict missing one published tensor fails strictly (no silent random weights).
    partial = save_tiny_vda(tmp_path / "partial")
    state = torch.load(os.path.join(partial, "video_depth_anything_vits.pth"), weights_only=True)
    del state["head.motion_modules.3.temporal_transformer.proj_out.weight"]
    torch.save(state, os.path.join(partial, "video_depth_anything_vits.pth"))
    with pytest.raises(ModelError, match="proj_out"):
        factory(partial, "cpu")


def _write_plate(directory, frames):
    from focuspull.io.images import write_image

    os.makedirs(directory, exist_ok=True)
    clip = _clip(max(frames) + 1, 30, 44, seed=3)
    for f in frames:
        write_image(os.path.join(directory, f"p.{f:04d}.exr"), clip[f], ["R", "G", "B"])
    return os.path.join(directory, "p.####.exr")


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "focuspull.commands.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_renders_with_vda_and_chunks_equal_one_run(tiny, tmp_path):
    from focuspull.io.images import read_image

    pattern = _write_plate(tmp_path / "in", range(1, 7))
    common = ["--depth-model", "vda", "--depth-checkpoint", tiny, "--k", "8", "--focus-disparity", "0.5", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "server"), "FOCUSPULL_CACHE_DIR": str(tmp_path / "cache")}
    whole = _cli("render", pattern, tmp_path / "whole" / "o.####.exr", *common, env=env)
    assert whole.returncode == 0, whole.stderr
    # Chunks with a fresh cache each: the chunk must estimate the whole clip by itself.
    for i, frames in enumerate(("1-3", "4-6")):
        chunk_env = {**env, "FOCUSPULL_CACHE_DIR": str(tmp_path / f"cache{i}")}
        done = _cli("render", pattern, tmp_path / "chunks" / "o.####.exr", *common, "--frames", frames, env=chunk_env)
        assert done.returncode == 0, done.stderr
    for i in range(2):  # each chunk estimated the whole clip together (6 per-clip keys)
        cached = [n for _, _, names in os.walk(tmp_path / f"cache{i}") for n in names if n.endswith(".npy")]
        assert len(cached) == 6 and all(n.startswith("clip-") for n in cached), cached
    for f in range(1, 7):
        a = read_image(str(tmp_path / "whole" / f"o.{f:04d}.exr")).pixels
        b = read_image(str(tmp_path / "chunks" / f"o.{f:04d}.exr")).pixels
        assert np.array_equal(a, b), f"frame {f}"
    source = read_image(str(tmp_path / "in" / "p.0002.exr")).pixels
    assert not np.allclose(a[..., :3], source[..., :3], atol=1e-3)  # the model's depth did blur it
    missing = _cli("render", pattern, tmp_path / "x" / "o.####.exr", "--depth-model", "vda", "--depth-checkpoint",
                   tmp_path / "no-model", "--k", "8", "--focus-disparity", "0.5", env=env)
    assert missing.returncode != 0 and "no-model" in missing.stderr and "never downloads" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_clip_results_are_cached_per_clip(tiny, tmp_path):
    from focuspull.stages.depth.estimates import EstimateStore

    calls = []

    class Counting:
        temporal = True

        def __init__(self, inner):
            self.inner = inner

        def clip(self, rgbs):
            calls.append(len(rgbs))
            return self.inner.clip(rgbs)

    inner = models.resolve_factory("depth", "vda")(tiny, "cpu")
    store = EstimateStore(Counting(inner), "vda", tiny, root=str(tmp_path))
    frames = _clip(4)
    first = store.get_clip(frames)
    again = EstimateStore(Counting(inner), "vda", tiny, root=str(tmp_path)).get_clip(frames)
    assert calls == [4] and all(np.array_equal(a, b) for a, b in zip(first, again))
    store.get_clip(frames[:3])  # another clip (a prefix): its own key, estimated again
    assert calls == [4, 3]
