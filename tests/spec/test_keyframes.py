"""focuspull.spec.keyframes: animated values, their text syntax and camera files."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focuspull.errors import InputError
from focuspull.spec.keyframes import Animated, load_camera, parse_animated


def test_constant_is_the_same_on_every_frame():
    a = parse_animated("2.8")
    assert a.is_constant
    assert [a.value_at(f) for f in (-5, 0, 1001, 1e6)] == [2.8] * 4


def test_linear_hits_keys_interpolates_and_holds_outside():
    a = parse_animated("1001:1.5,1041:9.5")
    assert a.value_at(1001) == 1.5 and a.value_at(1041) == 9.5
    assert a.value_at(1021) == pytest.approx(5.5)
    assert a.value_at(1011) == pytest.approx(3.5)
    assert a.value_at(900) == 1.5 and a.value_at(2000) == 9.5  # held, not extrapolated


def test_keys_may_be_given_in_any_order():
    assert parse_animated("20:4,10:2").value_at(15) == pytest.approx(3.0)


def test_smooth_eases_in_and_out_but_passes_through_keys():
    smooth = parse_animated("0:0,10:10@smooth")
    linear = parse_animated("0:0,10:10")
    assert smooth.value_at(0) == 0 and smooth.value_at(10) == 10
    assert smooth.value_at(5) == pytest.approx(5.0)  # symmetric ease
    # Eases: slower than linear just after the start, faster in the middle.
    assert smooth.value_at(1) < linear.value_at(1)
    assert smooth.value_at(5.5) - smooth.value_at(4.5) > 1.0


def test_smooth_does_not_overshoot_a_plateau():
    # Catmull-Rom would overshoot past 8 between the last two keys; monotone cubic must not.
    a = parse_animated("0:1.5,10:8,20:8,30:2@smooth")
    samples = [a.value_at(f / 10) for f in range(0, 301)]
    assert max(samples) <= 8.0 + 1e-9 and min(samples) >= 1.5 - 1e-9
    assert all(v == pytest.approx(8.0) for v in (a.value_at(12), a.value_at(15), a.value_at(18)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.floats(0.1, 100)), min_size=2, max_size=6,
                unique_by=lambda kv: kv[0]))
def test_smooth_stays_between_neighbouring_keys(keys):
    a = Animated.keyed(dict(keys), "smooth")
    ordered = sorted(keys)
    for (f0, v0), (f1, v1) in zip(ordered, ordered[1:]):
        lo, hi = min(v0, v1), max(v0, v1)
        for i in range(1, 8):
            v = a.value_at(f0 + (f1 - f0) * i / 8)
            assert lo - 1e-9 <= v <= hi + 1e-9


@pytest.mark.parametrize("text", ["2.8", "1001:1.5,1040:8.0", "1:2,5:3,9:1@smooth", "-3:0.5,2.5:4"])
def test_text_and_dict_forms_round_trip(text):
    a = parse_animated(text)
    assert parse_animated(a.to_text()) == a
    assert Animated.from_value(json.loads(json.dumps(a.to_dict()))) == a


@pytest.mark.parametrize("text", ["", "abc", "1001:", "1001:1.5,x:2", "1:2@cubic", "1:2,1:3", "2.8@smooth",
                                  "1001:1.5;1040:8", "nan"])
def test_bad_syntax_raises_input_error_with_an_example(text):
    with pytest.raises(InputError) as info:
        parse_animated(text, "--focus-distance")
    assert "1001:1.5,1040:8.0" in info.value.hint or "@linear" in info.value.hint


def test_bool_is_not_a_number():
    with pytest.raises(InputError):
        Animated.from_value(True)


def _camera(tmp_path, data):
    path = tmp_path / "cam.json"
    path.write_text(json.dumps(data))
    return path


def test_camera_file_frames_become_keyframes(tmp_path):
    path = _camera(tmp_path, {"fps": 25, "frames": {
        "1001": {"focal_length_mm": 35, "fstop": 2.0, "focus_distance_m": 2.0, "sensor_width_mm": 36},
        "1011": {"focal_length_mm": 50, "fstop": 2.0, "focus_distance_m": 6.0, "sensor_width_mm": 36,
                 "sensor_height_mm": 24}}})
    cam = load_camera(path)
    assert cam["focal_length_mm"].value_at(1006) == pytest.approx(42.5)
    assert cam["focus_distance_m"].value_at(1001) == 2.0 and cam["focus_distance_m"].value_at(1011) == 6.0
    assert cam["fstop"].value_at(1005) == 2.0
    assert cam["fps"].value_at(0) == 25
    assert "sensor_height_mm" not in cam


@pytest.mark.parametrize("data, needle", [
    ({"frames": {"1001": {"zoom": 2}}}, "zoom"),
    ({"frames": {"1001": {"fstop": "wide"}}}, "fstop"),
    ({"frames": {"first": {"fstop": 2}}}, "first"),
    ({"fps": 24}, "frames"),
    ({"frames": {"1": {"fstop": 2}}, "lens": "x"}, "lens"),
])
def test_bad_camera_files_name_the_problem(tmp_path, data, needle):
    with pytest.raises(InputError) as info:
        load_camera(_camera(tmp_path, data))
    assert needle in info.value.message and info.value.hint


def test_camera_file_not_json_or_missing(tmp_path):
    bad = tmp_path / "cam.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        load_camera(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_camera(tmp_path / "nope.json")
