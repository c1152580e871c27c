"""The refiner in the render pipeline, the job and the CLI: chunks equal one run, --refine DIR."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from focuspull.io.images import read_image, write_image
from focuspull.pipeline.run import run_job
from focuspull.spec.job import RenderJob
from focuspull.stages.refine.model import RefinerModel

H, W = 24, 40
TINY = dict(block_channels=[8, 16], norm_groups=4, embed_dim=16, num_bands=4, tile_size=24, tile_overlap=8,
            window=4, window_overlap=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = RefinerModel(**TINY)
    with torch.no_grad():  # as if trained: a non-zero head
        model.conv_out.weight.normal_(0, 0.05)
        model.conv_out.bias.normal_(0, 0.02)
    folder = tmp_path_factory.mktemp("refiner")
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder)


def _clip(frames):
    rng = np.random.default_rng(4)
    out = {}
    for f in frames:
        rgb = rng.random((H, W, 3)).astype(np.float32)
        depth = np.full((H, W), 6.0, np.float32)
        depth[:, : W // 3] = 1.5
        out[f] = {"rgba": rgb, "depth": depth}
    return out


def _job(model_dir, frames=()):
    return RenderJob.from_dict({"lens": {"focal_length_mm": 50, "fstop": 2.0}, "focus": {"distance_m": "1:1.5,7:6"},
                                "frames": list(frames), "refine": {"model_dir": model_dir}})


def test_chunked_refined_renders_equal_one_run(model_dir):
    inband = _clip(range(1, 8))
    whole = run_job(_job(model_dir), inband=inband).frames
    chunks = {}
    for part in ((1, 2, 3), (4, 5), (6, 7)):
        chunks.update(run_job(_job(model_dir, part), inband=inband).frames)
    assert sorted(whole) == sorted(chunks) == list(range(1, 8))
    for f in whole:
        assert np.array_equal(whole[f], chunks[f]), f"frame {f} differs between chunked and whole renders"
    plain = run_job(_job(None), inband=inband).frames
    assert all(np.abs(whole[f] - plain[f]).max() > 1e-4 for f in whole)  # the refiner did run


def test_one_frame_clip_refines(model_dir):
    out = run_job(_job(model_dir), inband=_clip([1])).frames[1]
    assert out.shape == (H, W, 3) and np.isfinite(out).all()


def test_the_refiner_changes_the_job_fingerprint_but_not_its_folder():
    a = RenderJob.from_dict({"refine": {"model_dir": "/a/refiner"}})
    b = RenderJob.from_dict({"refine": {"model_dir": "/mnt/b/refiner"}})
    off = RenderJob.from_dict({})
    assert a.fingerprint() == b.fingerprint() != off.fingerprint()
    assert RenderJob.from_dict(a.to_dict()) == a


def test_cli_render_with_refine_dir_end_to_end(tmp_path, model_dir):
    os.makedirs(tmp_path / "in")
    for f, frame in _clip(range(1, 4)).items():
        pixels = np.concatenate([frame["rgba"], frame["depth"][:, :, None]], 2)
        write_image(str(tmp_path / "in" / f"p.{f:04d}.exr"), pixels, ["R", "G", "B", "Z"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "focuspull.commands.cli", "render", str(tmp_path / "in" / "p.####.exr"),
            str(tmp_path / "out" / "r.####.exr"), "--focus-distance", "1.5", "--fstop", "2", "--quiet",
            "--refine", model_dir]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    missing = list(args)
    missing[5], missing[-1] = str(tmp_path / "out2" / "r.####.exr"), str(tmp_path / "missing")
    refused = subprocess.run(missing, capture_output=True, text=True, env=env, timeout=300)
    assert refused.returncode == 2 and "config.json" in refused.stderr and "hint:" in refused.stderr
    assert not (tmp_path / "out2").exists() or not os.listdir(tmp_path / "out2")
    refined = read_image(str(tmp_path / "out" / "r.0002.exr")).rgba()
    assert refined.shape[:2] == (H, W) and np.isfinite(refined).all()


def test_refine_without_dir_is_the_shipped_model_and_it_loads():
    from focuspull.commands import cli
    from focuspull.commands import render as render_cmd
    from focuspull.stages.refine import refiner_factory, refiner_reach

    parser = cli.build_parser("render", render_cmd)
    args = parser.parse_args(["in.####.exr", "out.####.exr", "--refine"])
    job = render_cmd.job_dict_from_args(args)
    assert job["refine"]["model_dir"] == render_cmd.DEFAULT_REFINER
    assert refiner_reach(render_cmd.DEFAULT_REFINER) == 7  # 8-frame windows
    pipe = refiner_factory(render_cmd.DEFAULT_REFINER, "cpu")
    rng = np.random.default_rng(0)
    aif = rng.random((1, 20, 30, 3)).astype(np.float32)
    coc = rng.uniform(-4, 4, (1, 20, 30)).astype(np.float32)
    out = pipe(aif, coc, aif).frames
    assert out.shape == aif.shape and np.isfinite(out).all()
    assert np.abs(out - aif).max() > 0  # trained weights: not the zero head
    assert "--refine" in render_cmd.command_line(RenderJob.from_dict(job))


def test_refine_precision_bf16_runs_the_network_in_bfloat16_close_to_fp32(model_dir):
    """`refine.precision`: auto and fp32 give the same pixels on the CPU; bf16 is a separately
    cached model in bfloat16 whose frames stay within bfloat16 rounding of fp32's; the
    fingerprint tells them apart only when a refiner runs."""
    from focuspull.stages.models import ModelCache
    from focuspull.stages.refine import MODEL_BY_PRECISION

    inband = _clip(range(1, 5))
    runs = {}
    for precision in ("auto", "fp32", "bf16"):
        job = RenderJob.from_dict({**_job(model_dir).to_dict(), "refine": {"model_dir": model_dir,
                                                                           "precision": precision}})
        runs[precision] = run_job(job, inband=inband).frames
    plain = run_job(_job(None), inband=inband).frames
    for f in inband:
        assert np.array_equal(runs["auto"][f], runs["fp32"][f])
        change = np.abs(runs["fp32"][f] - plain[f]).max()
        diff = np.abs(runs["bf16"][f] - runs["fp32"][f]).max()
        assert change > 1e-3 and 0 < diff < 0.05 * change, (f, change, diff)
    cache = ModelCache("cpu")
    bf16 = cache.get("refine", MODEL_BY_PRECISION["bf16"], model_dir)
    assert bf16.dtype == torch.bfloat16 and next(bf16.model.parameters()).dtype == torch.bfloat16
    assert cache.get("refine", MODEL_BY_PRECISION["auto"], model_dir).dtype == torch.float32
    refined = {p: RenderJob.from_dict({"refine": {"model_dir": "/m", "precision": p}}) for p in ("fp32", "bf16")}
    assert refined["fp32"].fingerprint() != refined["bf16"].fingerprint()
    assert (RenderJob.from_dict({"refine": {"precision": "bf16"}}).fingerprint()
            == RenderJob.from_dict({}).fingerprint())  # no refiner: the precision changes nothing


def test_refine_precision_is_a_cli_flag_and_a_checked_field():
    from focuspull.commands import cli
    from focuspull.commands import render as render_cmd
    from focuspull.errors import JobSpecError

    parser = cli.build_parser("render", render_cmd)
    args = parser.parse_args(["in.####.exr", "out.####.exr", "--refine", "--refine-precision", "bf16"])
    job = RenderJob.from_dict(render_cmd.job_dict_from_args(args))
    assert job.refine.precision == "bf16"
    assert "--refine-precision" in render_cmd.command_line(job) and "bf16" in render_cmd.command_line(job)
    with pytest.raises(JobSpecError) as refused:
        RenderJob.from_dict({"refine": {"precision": "fp8"}})
    assert refused.value.field == "refine.precision"
