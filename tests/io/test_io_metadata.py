"""focuspull.io.metadata (time code, frame rate) and the light import of focuspull.io."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from focuspull.errors import InputError
from focuspull.io.metadata import fps_rational, timecode_from_string, timecode_to_string


def test_timecode_packing_matches_smpte_bcd():
    # 01:00:04:05 -> BCD nibbles hh mm ss ff = 0x01 00 04 05
    assert timecode_from_string("01:00:04:05") == 0x01000405
    assert timecode_to_string(0x23595929) == "23:59:59:29"
    assert timecode_from_string("00:00:00;02") == 0x02 | (1 << 6)  # drop-frame flag bit 6
    assert timecode_to_string(0x02 | (1 << 6)) == "00:00:00;02"


@given(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 29), st.booleans())
def test_timecode_round_trip(hours, minutes, seconds, frames, drop):
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}{';' if drop else ':'}{frames:02d}"
    assert timecode_to_string(timecode_from_string(text)) == text


@pytest.mark.parametrize("bad", ["1:2:3", "25:00:00:00", "aa:bb:cc:dd", "01:60:00:00"])
def test_bad_timecode(bad):
    with pytest.raises(InputError):
        timecode_from_string(bad)


@pytest.mark.parametrize("fps, rational", [
    (24, (24, 1)), (25.0, (25, 1)), (23.976, (24000, 1001)), (29.97, (30000, 1001)),
    (59.94, (60000, 1001)), ([30000, 1001], (30000, 1001)), (12.5, (25, 2)),
])
def test_fps_rational(fps, rational):
    assert fps_rational(fps) == rational


def test_fps_must_be_positive():
    with pytest.raises(InputError):
        fps_rational(0)


def test_import_is_light():
    """Host Pythons can use patterns and ranges: no torch, no OpenImageIO, no PyAV on import."""
    code = ("import sys, focuspull.io as io; io.parse_frame_range('1-3'); io.SequencePattern('a.#.exr');"
            "print(sorted(m for m in ('torch', 'OpenImageIO', 'av') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = "import focuspull.io as io; print(io.read_image.__module__, io.PreviewWriter.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["focuspull.io.images", "PreviewWriter"]
