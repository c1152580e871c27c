"""The command line and the job are one mapping (the registry): job -> argv -> job is exact."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focuspull.commands import cli
from focuspull.commands import render as render_cmd
from focuspull.spec.job import RenderJob


def round_trip(job: RenderJob) -> RenderJob:
    argv = render_cmd.command_line(job)
    assert argv[:2] == ["focuspull", "render"]
    args = cli.build_parser("render", render_cmd).parse_args(argv[2:])
    return RenderJob.from_dict(render_cmd.job_dict_from_args(args))


@pytest.mark.parametrize("job", [
    {"lens": {"focal_length_mm": 85, "fstop": "1001:1.4,1040:8@smooth", "max_size_px": 24, "cg_camera": True},
     "focus": {"distance_m": "1001:1.6,1048:14"}, "aperture": {"blades": 7, "rotation_deg": 10, "roundness": 0.3},
     "output": {"preview": "p.mp4", "compression": "dwaa:45", "half": False}, "frames": [1001, 1002, 1005]},
    {"lens": {"mode": "artistic", "size_px": 12}, "depth": {"kind": "model", "model": "tiny",
                                                              "checkpoint_dir": "m/tiny", "stabilise_window": 2,
                                                              "depth_math": "disparity_norm"},
     "focus": {"mode": "point", "point_x": 320, "point_y": 200, "track_from_frame": 1001, "smoothing_window": 3}},
    {"lens": {"mode": "artistic", "k": 20}, "depth": {"kind": "sequence", "pattern": "d.####.exr",
                                                       "depth_math": "far=0"},
     "focus": {"mode": "disparity", "disparity": 0.25}, "highlights": {"threshold": 0.9, "gain": 6},
     "output": {"setup_view": True, "keep_depth": False, "resume": True}, "plane_spacing_px": 1.5},
    {"focus": {"mode": "matte", "matte_channel": "matte.A"}, "depth": {"channel": "depth.Z", "bad_depth": "far"},
     "device": "cuda:1", "input": {"transfer": "srgb"}},
])
def test_a_job_survives_the_command_line(job):
    full = RenderJob.from_dict({**job, "input": {"pattern": "in.####.exr", **job.get("input", {})},
                                "output": {"pattern": "out.####.exr", **job.get("output", {})}})
    assert round_trip(full) == full


@settings(max_examples=60, deadline=None)
@given(fstop=st.floats(0.5, 64), focal=st.floats(1, 600), distance=st.floats(0.01, 1000),
       blades=st.sampled_from([0, 3, 5, 9]), rotation=st.floats(-180, 180), roundness=st.floats(0, 1),
       stabilise=st.integers(0, 8), spacing=st.floats(0.25, 4))
def test_any_physical_job_survives_the_command_line(fstop, focal, distance, blades, rotation, roundness,
                                                     stabilise, spacing):
    job = RenderJob.from_dict({"input": {"pattern": "a.####.exr"}, "output": {"pattern": "b.####.exr"},
                               "lens": {"fstop": fstop, "focal_length_mm": focal},
                               "focus": {"distance_m": distance},
                               "aperture": {"blades": blades, "rotation_deg": rotation, "roundness": roundness},
                               "depth": {"stabilise_window": stabilise}, "plane_spacing_px": spacing})
    back = round_trip(job)
    assert back == job
