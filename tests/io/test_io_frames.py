"""focuspull.io.frames: sequence patterns, frame scanning, frame-range parsing."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focuspull.errors import InputError
from focuspull.io.frames import SequencePattern, format_frame_ranges, parse_frame_range


@pytest.mark.parametrize("text", ["shot.####.exr", "shot.%04d.exr", "shot.@@@@.exr"])
def test_padded_patterns_name_frames_alike(text):
    pattern = SequencePattern(os.path.join("plates", text))
    assert pattern.path(1001) == os.path.join("plates", "shot.1001.exr")
    assert pattern.path(7) == os.path.join("plates", "shot.0007.exr")
    assert str(pattern) == os.path.join("plates", text)
    assert not pattern.is_single_image


def test_padding_width_follows_the_token():
    assert SequencePattern("a.##.png").path(3) == "a.03.png"
    assert SequencePattern("a.%06d.png").path(3) == "a.000003.png"
    assert SequencePattern("a_@.png").path(3) == "a_3.png"
    assert SequencePattern("a.%d.png").path(3) == "a.3.png"


def test_wide_and_negative_frames_like_nuke_printf():
    pattern = SequencePattern("shot.####.exr")
    assert pattern.path(12345) == "shot.12345.exr"  # no truncation
    assert pattern.path(-5) == "shot.-005.exr"      # printf: the sign counts in the width
    assert pattern.path(-12345) == "shot.-12345.exr"


def test_single_image_serves_every_frame(tmp_path):
    still = tmp_path / "still.exr"
    pattern = SequencePattern(str(still))
    assert pattern.is_single_image
    assert pattern.path(1) == pattern.path(1042) == str(still)
    assert pattern.frames_on_disk() == []
    still.write_bytes(b"x")
    assert pattern.frames_on_disk() == [1]


def test_frames_on_disk_lists_only_names_the_pattern_makes(tmp_path):
    for name in ["shot.0001.exr", "shot.0002.exr", "shot.0010.exr", "shot.12345.exr", "shot.-001.exr",
                 "shot.1.exr",                # not padded: another sequence
                 "shot.0003.exr.bak",         # other suffix
                 ".shot.0004.exr.99-ab.tmp.exr",  # a temp file of an atomic write
                 "other.0005.exr"]:
        (tmp_path / name).write_bytes(b"x")
    pattern = SequencePattern(str(tmp_path / "shot.####.exr"))
    assert pattern.frames_on_disk() == [-1, 1, 2, 10, 12345]
    # unpadded: "shot.1.exr" and "shot.12345.exr"; "shot.0001.exr" is not %d
    assert SequencePattern(str(tmp_path / "shot.%d.exr")).frames_on_disk() == [1, 12345]
    assert SequencePattern(tmp_path / "missing" / "x.####.exr").frames_on_disk() == []  # a Path works too


@pytest.mark.parametrize("bad", ["shot.####.####.exr", "v##/shot.####.exr", "", None, 1001])
def test_bad_patterns_raise_input_error(bad):
    with pytest.raises(InputError) as err:
        SequencePattern(bad)
    assert err.value.hint


@pytest.mark.parametrize("text, frames", [
    ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
    ("1-10x3", [1, 4, 7, 10]),
    ("1-10:4", [1, 5, 9]),
    ("1001", [1001]),
    ("1,5,10-12", [1, 5, 10, 11, 12]),
    ("  10 - 12 ,  1 , 11 ", [1, 10, 11, 12]),   # whitespace, sorted, unique
    ("-3--1", [-3, -2, -1]),
    ("-2-1", [-2, -1, 0, 1]),
])
def test_parse_frame_range(text, frames):
    assert parse_frame_range(text) == frames


@pytest.mark.parametrize("bad", ["", "   ", "abc", "10-1", "1-10x0", "1-10x", "1--", "1,,2", "1-5-9", "1.5"])
def test_bad_frame_ranges_explain_the_syntax(bad):
    with pytest.raises(InputError) as err:
        parse_frame_range(bad)
    assert "1001-1100" in err.value.hint or "-" in err.value.hint


def test_bad_range_hint_shows_an_example():
    with pytest.raises(InputError) as err:
        parse_frame_range("frames 1 to 10")
    assert "1001-1100" in err.value.hint and "1-100x2" in err.value.hint


def test_huge_range_is_refused():
    with pytest.raises(InputError):
        parse_frame_range("1-100000000")


def test_format_frame_ranges_compresses_runs():
    assert format_frame_ranges([1020, *range(1004, 1011), 1004]) == "1004-1010, 1020"
    assert format_frame_ranges([5]) == "5"
    assert format_frame_ranges([]) == ""


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-50, max_value=300), min_size=1, max_size=40))
def test_format_then_parse_gives_the_frames_back(frames):
    assert parse_frame_range(format_frame_ranges(frames)) == sorted(set(frames))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-10**6, max_value=10**7), st.integers(min_value=1, max_value=8))
def test_path_number_parses_back_to_the_frame(frame, padding):
    pattern = SequencePattern("s." + "#" * padding + ".exr")
    number = pattern.path(frame)[2:-4]
    assert int(number) == frame
    assert len(number) >= padding


# -- hostile patterns (issue 13) --------------------------------------------------------------
@pytest.mark.parametrize("text", ["o.%0300000000d.exr", "o.%300000000d.exr", "o." + "#" * 100_000 + ".exr",
                                  "o.%0" + "9" * 10_000 + "d.exr", "o.%021d.exr"])
def test_a_padding_wider_than_the_bound_is_refused_without_echoing_it(text):
    with pytest.raises(InputError) as info:
        SequencePattern(text)
    assert "digits" in info.value.message and len(str(info.value)) < 400


def test_the_widest_allowed_padding_still_names_frames():
    from focuspull.io.frames import MAX_PADDING

    assert SequencePattern(f"o.%0{MAX_PADDING}d.exr").path(7) == "o." + "7".zfill(MAX_PADDING) + ".exr"
    assert SequencePattern("o.%000004d.exr").path(7) == "o.0007.exr"  # leading zeros are not width


def test_frame_range_errors_do_not_echo_huge_text():
    with pytest.raises(InputError) as info:
        parse_frame_range("1-" + "x" * 1_000_000)
    assert len(str(info.value)) < 500


def test_sequence_range_has_the_gaps_and_keeps_the_step():
    from focuspull.io.frames import sequence_range

    assert sequence_range([1, 2, 3, 5]) == [1, 2, 3, 4, 5]
    assert sequence_range([1001, 1003, 1005]) == [1001, 1003, 1005]  # on twos: no gap
    assert sequence_range([1, 3, 5, 9]) == [1, 3, 5, 7, 9]
    assert sequence_range([7]) == [7] and sequence_range([]) == []
