"""The job resolved once: each value parsed once, validated once, converted once per frame."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from focuspull.commands import cli
from focuspull.commands import render as render_cmd
from focuspull.errors import LensError
from focuspull.pipeline.plan import LensPlan, frames_read, temporal_reach
from focuspull.pipeline.run import run_job
from focuspull.spec import keyframes
from focuspull.spec.job import RenderJob
from focuspull.stages import lens as lens_mod


def _clip(frames, h=12, w=16):
    rng = np.random.default_rng(3)
    return {f: {"rgba": rng.random((h, w, 4), dtype=np.float32),
                "depth": np.linspace(1.0, 5.0, h * w, dtype=np.float32).reshape(h, w)} for f in frames}


def test_focus_distance_is_parsed_once_validated_once_and_converted_once_per_frame(monkeypatch):
    parsed, evaluated, lenses = [], collections.Counter(), []
    real_parse, real_value_at = keyframes.parse_animated, keyframes.Animated.value_at
    real_post_init = lens_mod.ThinLens.__post_init__

    def counting_parse(text, what="value"):
        parsed.append(what)
        return real_parse(text, what)

    def counting_value_at(self, frame):
        evaluated[(self, frame)] += 1
        return real_value_at(self, frame)

    def counting_post_init(self):
        lenses.append(self.focus_distance_m)
        real_post_init(self)

    monkeypatch.setattr(keyframes, "parse_animated", counting_parse)
    monkeypatch.setattr(keyframes.Animated, "value_at", counting_value_at)
    monkeypatch.setattr(lens_mod.ThinLens, "__post_init__", counting_post_init)
    parser = cli.build_parser("render", render_cmd)
    args = parser.parse_args(["a.####.exr", "b.####.exr", "--focus-distance", "1:1.5,3:4.5@smooth",
                              "--fstop", "2"])
    job = RenderJob.from_dict({**render_cmd.job_dict_from_args(args), "input": {}, "output": {}})
    # The CLI passes the text through; the spec parses each animated value once.
    assert collections.Counter(parsed) == {"focus.distance_m": 1, "lens.fstop": 1}
    frames = [1, 2, 3]
    run_job(job.replace(frames=tuple(frames)), inband=_clip(frames))
    distance = job.focus.distance_m
    assert [evaluated[(distance, f)] for f in frames] == [1, 1, 1]  # evaluated once per frame
    assert lenses == [distance.value_at(f) for f in frames]  # one thin lens per frame


def test_a_fixed_focus_fails_on_the_frame_before_anything_renders():
    # Focused nearer than the focal length on frame 3 only: refused before frame 1 renders.
    job = RenderJob.from_dict({"lens": {"focal_length_mm": 200}, "frames": [1, 2, 3],
                               "focus": {"distance_m": "1:3,2:3,3:0.1"}})
    rendered = []
    with pytest.raises(LensError, match="frame 3"):
        run_job(job, inband=_clip([1, 2, 3]), on_event=rendered.append)
    assert rendered == []


def test_optics_follow_the_thin_lens_and_the_artistic_size():
    job = RenderJob.from_dict({"lens": {"focal_length_mm": 50, "fstop": 2, "sensor_width_mm": 36},
                               "focus": {"distance_m": 2.0}})
    optics = LensPlan(job, 1000).at(7)
    f = 0.05
    assert optics.focus_disparity == pytest.approx(0.5)
    assert optics.k_px == pytest.approx(f / 4 * f * 2 / (2 - f) / 0.036 * 1000)
    art = RenderJob.from_dict({"lens": {"mode": "artistic", "size_px": 12}, "focus": {"mode": "disparity",
                                                                                    "disparity": 0.25}})
    assert LensPlan(art, 1000).at(1).k_px == pytest.approx(48.0)  # 12 px at infinity: 12 / 0.25


def test_temporal_reach_is_the_sum_of_the_stages_reaches():
    base = {"focus": {"mode": "point", "point_x": 1, "point_y": 1, "smoothing_window": 2},
            "depth": {"stabilise_window": 3}}
    assert temporal_reach(RenderJob.from_dict(base)) == 5
    assert temporal_reach(RenderJob.from_dict({"depth": {"stabilise_window": 3}})) == 3
    assert frames_read(RenderJob.from_dict(base), list(range(1, 21)), [10]) == list(range(5, 16))
