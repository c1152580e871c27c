"""focuspull.spec.job: the job spec validates strictly and round-trips through JSON and msgpack."""
import json
import subprocess
import sys

import msgpack
import pytest

from focuspull.errors import JobSpecError
from focuspull.spec.job import RenderJob
from focuspull.spec.keyframes import parse_animated

FULL = {
    "input": {"pattern": "/shots/a/plate.####.exr", "transfer": None},
    "frames": [1003, 1001, 1002],
    "depth": {"kind": "sequence", "channel": "depth.Z", "pattern": "/shots/a/depth.####.exr",
              "model": None, "checkpoint_dir": None, "depth_math": "far=0", "bad_depth": "far",
              "stabilise_window": 2},
    "lens": {"mode": "physical", "focal_length_mm": {"keys": {"1001": 35, "1003": 50}, "interpolation": "smooth"},
             "fstop": 2.0, "sensor_width_mm": 24.89, "max_size_px": 40.0},
    "focus": {"mode": "point", "point_x": 320.5, "point_y": {"keys": {"1001": 100, "1003": 140}},
              "track_from_frame": 1002, "point_radius_px": 3.0, "smoothing_window": 4},
    "aperture": {"blades": 6, "rotation_deg": 15.0, "roundness": 0.25},
    "highlights": {"threshold": 0.9, "gain": 3.0},
    "output": {"pattern": "/out/a_dof.####.exr", "compression": "dwaa", "half": False, "resume": True,
               "preview": "/out/a_dof.mp4", "preview_fps": 25.0, "setup_view": False, "keep_depth": False},
    "device": "cuda:1",
    "plane_spacing_px": 0.5,
}


def test_from_dict_reads_every_section():
    job = RenderJob.from_dict(FULL)
    assert job.frames == (1001, 1002, 1003)  # sorted
    assert job.depth.kind == "sequence" and job.depth.stabilise_window == 2
    assert job.lens.focal_length_mm.value_at(1002) == pytest.approx(42.5)
    assert job.lens.focal_length_mm.interpolation == "smooth"
    assert job.focus.point_y.value_at(1002) == pytest.approx(120)
    assert job.output.compression == "dwaa" and job.output.half is False
    assert job.aperture.blades == 6 and job.device == "cuda:1"


def test_round_trip_through_json_and_msgpack():
    job = RenderJob.from_dict(FULL)
    plain = job.to_dict()
    assert RenderJob.from_dict(json.loads(json.dumps(plain))) == job
    assert RenderJob.from_dict(msgpack.unpackb(msgpack.packb(plain), strict_map_key=False)) == job
    assert RenderJob.from_dict(plain).to_dict() == plain


def test_defaults_are_a_usable_job_and_round_trip():
    job = RenderJob.from_dict({"input": {"pattern": "a.####.exr"}})
    assert job.lens.mode == "physical" and job.focus.mode == "distance"
    assert job.focus.distance_m.value_at(1) == 3.0
    assert RenderJob.from_dict(job.to_dict()) == job


def test_text_keyframes_are_accepted_and_normalised():
    job = RenderJob.from_dict({"focus": {"distance_m": "1:1.5,10:8@smooth"}})
    assert job.focus.distance_m == parse_animated("1:1.5,10:8@smooth")
    assert job.to_dict()["focus"]["distance_m"] == {"keys": {"1": 1.5, "10": 8.0}, "interpolation": "smooth"}


@pytest.mark.parametrize("mapping, path, expected", [
    ({"lens": {"fstop": "wide"}}, "lens.fstop", "number or keyframes"),
    ({"frames": [1, 2.5]}, "frames[1]", "an integer"),
    ({"frames": "1-10"}, "frames", "a list"),
    ({"output": {"half": 1}}, "output.half", "true or false"),
    ({"aperture": {"blades": True}}, "aperture.blades", "an integer"),
    ({"aperture": {"rotation_deg": "10"}}, "aperture.rotation_deg", "a number"),
    ({"depth": {"kind": "lidar"}}, "depth.kind", "one of channel, sequence, model"),
    ({"depth": {"depth_math": "inverse"}}, "depth.depth_math", "one of depth, far=0"),
    ({"depth": {"stabilise_window": -1}}, "depth.stabilise_window", "must be 0 .. 64 frames"),
    ({"input": {"pattern": 5}}, "input.pattern", "a string"),
    ({"lens": ["physical"]}, "lens", "a map"),
    ({"focus": {"distance_m": {"keys": {"a": 1}}}}, "focus.distance_m", "keyframes"),
])
def test_wrong_types_name_the_key_path_and_expected_type(mapping, path, expected):
    with pytest.raises(JobSpecError) as info:
        RenderJob.from_dict(mapping)
    assert f"'{path}'" in info.value.message
    assert expected in info.value.message
    assert info.value.hint


@pytest.mark.parametrize("mapping, name", [
    ({"colour": 1}, "'colour'"),
    ({"lens": {"aperture": 2}}, "'lens.aperture'"),
    ({"output": {"path": "x"}}, "'output.path'"),
])
def test_unknown_keys_are_rejected_with_the_valid_ones_listed(mapping, name):
    with pytest.raises(JobSpecError) as info:
        RenderJob.from_dict(mapping)
    assert name in info.value.message
    assert "valid fields" in info.value.hint


@pytest.mark.parametrize("mapping, needle", [
    ({"depth": {"depth_math": "disparity_norm"}}, "metric depth"),
    ({"depth": {"kind": "model", "model": "tiny"}, "lens": {"mode": "artistic", "size_px": 5}}, "focus by distance"),
    ({"lens": {"mode": "artistic"}}, "exactly one of"),
    ({"lens": {"mode": "artistic", "size_px": 4, "k": 3}}, "exactly one of"),
    ({"depth": {"kind": "sequence"}}, "depth.pattern"),
    ({"focus": {"mode": "point", "point_x": 3}}, "point_x/point_y"),
    ({"focus": {"mode": "matte"}}, "matte_channel"),
    ({"output": {"resume": True, "overwrite": True}}, "both set"),
])
def test_inconsistent_jobs_are_refused(mapping, needle):
    with pytest.raises(JobSpecError) as info:
        RenderJob.from_dict({"input": {"pattern": "a.####.exr"}, **mapping})
    assert needle in info.value.message


def test_relative_depth_with_artistic_lens_and_point_focus_is_valid():
    job = RenderJob.from_dict({"input": {"pattern": "a.####.exr"},
                               "depth": {"kind": "model", "model": "tiny", "checkpoint_dir": "/m"},
                               "lens": {"mode": "artistic", "k": 12},
                               "focus": {"mode": "point", "point_x": 3, "point_y": 4}})
    assert job.lens.k.value_at(0) == 12


def test_job_module_does_not_import_torch():
    code = ("import sys, focuspull.spec.job; "
            "focuspull.spec.job.RenderJob.from_dict({'input': {'pattern': 'a.####.exr'}, "
            "'output': {'compression': 'dwaa:45'}}); "
            "print('torch' in sys.modules, 'OpenImageIO' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


@pytest.mark.parametrize("mapping, path, where, flag", [
    ({"focus": {"distance_m": 0}}, "focus.distance_m", "0.001 .. 1e+06 m", "--focus-distance"),
    ({"focus": {"distance_m": -2.5}}, "focus.distance_m", "0.001 .. 1e+06 m", "--focus-distance"),
    ({"focus": {"distance_m": "1001:2,1010:0"}}, "focus.distance_m", "frame 1010", "--focus-distance"),
    ({"focus": {"distance_m": {"keys": {"1": 3, "5": -1}}}}, "focus.distance_m", "frame 5", "--focus-distance"),
    ({"lens": {"max_size_px": -1}}, "lens.max_size_px", "0 .. 1024 px", "--max-size"),
    ({"lens": {"max_size_px": float("nan")}}, "lens.max_size_px", "finite", "--max-size"),
    ({"lens": {"max_size_px": float("inf")}}, "lens.max_size_px", "finite", "--max-size"),
    ({"output": {"preview_fps": float("nan")}}, "output.preview_fps", "finite", "--preview-fps"),
    ({"plane_spacing_px": float("nan")}, "plane_spacing_px", "finite", "--plane-spacing"),
    ({"aperture": {"rotation_deg": float("inf")}}, "aperture.rotation_deg", "finite", "--rotation"),
    ({"highlights": {"threshold": float("nan")}}, "highlights.threshold", "finite", "--highlight-threshold"),
    ({"highlights": {"gain": float("-inf")}}, "highlights.gain", "finite", "--highlight-gain"),
    ({"output": {"compression": "zstd"}}, "output.compression", "zstd", "--compression"),
    ({"output": {"compression": "dwaa:high"}}, "output.compression", "dwaa:high", "--compression"),
])
def test_impossible_numbers_are_refused_naming_the_field_each_front_end_translates(mapping, path, where, flag):
    from focuspull.spec.fields import translate

    with pytest.raises(JobSpecError) as info:
        RenderJob.from_dict({"input": {"pattern": "a.####.exr"}, **mapping})
    assert info.value.field == path
    assert f"'{path}'" in info.value.message and where in info.value.message
    assert "--" not in info.value.message + info.value.hint  # the spec names job fields, not CLI flags
    assert flag in translate(info.value.message, info.value.field, "cli")


def test_every_field_is_bounded_whatever_the_focus_mode():
    # One rule at the edge: a field out of its registry range is refused even when unused.
    with pytest.raises(JobSpecError) as info:
        RenderJob.from_dict({"lens": {"mode": "artistic", "k": 4},
                             "focus": {"mode": "disparity", "disparity": 0.0, "distance_m": 0}})
    assert info.value.field == "focus.distance_m"
    job = RenderJob.from_dict({"lens": {"mode": "artistic", "k": 4}, "focus": {"mode": "disparity", "disparity": 0.0}})
    assert job.focus.disparity.value_at(1) == 0.0
    assert RenderJob.from_dict({"lens": {"max_size_px": 0}}).lens.max_size_px == 0.0


@pytest.mark.parametrize("compression", ["dwaa:45", "htj2k", "zip", "DWAB", "zip:6"])
def test_job_accepts_every_compression_io_writes(compression):
    from focuspull.spec.compression import EXR_COMPRESSIONS, check_compression

    job = RenderJob.from_dict({"output": {"compression": compression}})
    assert job.output.compression == check_compression(compression)
    for name in EXR_COMPRESSIONS:
        assert RenderJob.from_dict({"output": {"compression": name}}).output.compression == check_compression(name)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_animated = st.one_of(
    st.floats(0.5, 200, allow_nan=False),
    st.builds(lambda keys, smooth: {"keys": {str(f): v for f, v in keys.items()},
                                    "interpolation": "smooth" if smooth else "linear"},
              st.dictionaries(st.integers(-100, 5000), st.floats(0.5, 200), min_size=2, max_size=5),
              st.booleans()))


@settings(max_examples=40, deadline=None)
@given(frames=st.lists(st.integers(-50, 5000), unique=True, max_size=20), fstop=_animated, focal=_animated,
       distance=_animated, blades=st.sampled_from([0, 3, 6, 9]), half=st.booleans(),
       depth_math=st.sampled_from(["depth", "far=0"]), window=st.integers(0, 8),
       compression=st.sampled_from(["zip", "piz", "dwaa", "none"]))
def test_any_valid_job_round_trips_through_msgpack(frames, fstop, focal, distance, blades, half, depth_math,
                                                   window, compression):
    job = RenderJob.from_dict({
        "input": {"pattern": "in.####.exr"}, "frames": frames,
        "depth": {"depth_math": depth_math, "stabilise_window": window},
        "lens": {"fstop": fstop, "focal_length_mm": focal}, "focus": {"distance_m": distance},
        "aperture": {"blades": blades}, "output": {"pattern": "out.####.exr", "half": half,
                                                   "compression": compression}})
    plain = job.to_dict()
    back = RenderJob.from_dict(msgpack.unpackb(msgpack.packb(plain)))
    assert back == job
    for frame in (-60, 0, 1001, 2500.5, 6000):
        assert back.lens.fstop.value_at(frame) == job.lens.fstop.value_at(frame)


def test_fingerprint_changes_with_the_pixels_not_with_chunks_paths_or_resume():
    job = RenderJob.from_dict(FULL)  # dwaa: lossy, so its level is part of the pixels
    lossless = {RenderJob.from_dict({**FULL, "output": {**FULL["output"], "compression": c}}).fingerprint()
                for c in ("zip", "piz", "none", "htj2k")}
    assert len(lossless) == 1 and job.fingerprint() not in lossless
    same = [job.replace(frames=(5, 6)), job.replace(device="cpu"),
            RenderJob.from_dict({**FULL, "output": {**FULL["output"], "compression": "dwaa"}}),
            RenderJob.from_dict({**FULL, "input": {"pattern": "/mnt/other/plate.####.exr"},
                                 "output": {**FULL["output"], "pattern": "/x/y.####.exr", "resume": False,
                                            "overwrite": True, "preview": None}})]
    assert {j.fingerprint() for j in same} == {job.fingerprint()}
    different = [RenderJob.from_dict({**FULL, "lens": {**FULL["lens"], "fstop": 2.8}}),
                 RenderJob.from_dict({**FULL, "output": {**FULL["output"], "setup_view": True}}),
                 RenderJob.from_dict({**FULL, "aperture": {"blades": 5}}),
                 RenderJob.from_dict({**FULL, "output": {**FULL["output"], "compression": "dwaa:90"}}),
                 RenderJob.from_dict({**FULL, "depth": {**FULL["depth"], "stabilise_window": 1}})]
    prints = [j.fingerprint() for j in different]
    assert job.fingerprint() not in prints and len(set(prints)) == len(prints)
