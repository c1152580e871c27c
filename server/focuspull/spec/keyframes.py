"""Animated parameters: a constant, or keyframes ``{frame: value}`` with interpolation.

Pure Python, no numpy/torch.  Every per-frame lens or focus setting is an
:class:`Animated`, evaluated with ``value_at(frame)``: a function of the frame
number, never of hidden "current frame" state (so any chunk of a shot renders the
same as the whole shot).

Text syntax (the command line and the Nuke/Resolve adapters use it)::

    2.8                         a constant
    1001:1.5,1040:8.0           keyframes, linear in between
    1001:1.5,1040:8.0@smooth    keyframes, smooth (monotone cubic) in between
    1001:1.5,1040:8.0@linear    same as no suffix

Outside the first and last key the value is held.  ``smooth`` is a monotone
piecewise cubic (Fritsch-Carlson): it eases through the keys like a Catmull-Rom
spline but never overshoots them, so a focus pull from 1.5 m to 8 m never racks
past 8 m (or below the focal length).

A camera exported from a CG package (``--camera cam.json``)::

    {"fps": 24, "frames": {"1001": {"focal_length_mm": 35, "fstop": 2.0,
                                    "focus_distance_m": 3.2, "sensor_width_mm": 36}, ...}}

becomes one :class:`Animated` per field (keys on the listed frames, linear).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

from focuspull.errors import InputError

INTERPOLATIONS = ("linear", "smooth")
CAMERA_FIELDS = ("focal_length_mm", "fstop", "focus_distance_m", "sensor_width_mm")
# Fields CG exporters commonly add that do not affect defocus: accepted and ignored.
_CAMERA_IGNORED = ("sensor_height_mm", "name", "frame")
_EXAMPLE = "e.g. '2.8', '1001:1.5,1040:8.0' or '1001:1.5,1040:8.0@smooth'"


@dataclass(frozen=True)
class Animated:
    """A value per frame.

    ``keys`` is a tuple of ``(frame, value)`` pairs sorted by frame (one pair = a
    constant).  Build with :meth:`constant`, :meth:`keyed`, :func:`parse_animated`
    or :meth:`from_value`.
    """

    keys: tuple[tuple[float, float], ...]
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        if not self.keys:
            raise InputError("an animated value needs at least one key", f"pass {_EXAMPLE}")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"unknown interpolation {self.interpolation!r}",
                             f"use one of {', '.join(INTERPOLATIONS)}")
        frames = [f for f, _ in self.keys]
        for f, v in self.keys:
            if not (math.isfinite(f) and math.isfinite(v)):
                raise InputError(f"keyframe {f}:{v} is not a finite number", f"pass {_EXAMPLE}")
        if any(b <= a for a, b in zip(frames, frames[1:])):
            raise InputError(f"keyframes must be on distinct frames, got frames {frames}",
                             "list each frame once, e.g. '1001:1.5,1040:8.0'")
        if len(self.keys) == 1:
            # One key is a constant: normalise so equal values compare (and round-trip) equal.
            object.__setattr__(self, "keys", ((0.0, float(self.keys[0][1])),))
            object.__setattr__(self, "interpolation", "linear")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def constant(cls, value: float) -> "Animated":
        return cls(((0.0, float(value)),))

    @classmethod
    def keyed(cls, keys: Mapping[float, float], interpolation: str = "linear") -> "Animated":
        return cls(tuple(sorted((float(f), float(v)) for f, v in keys.items())), interpolation)

    @classmethod
    def from_value(cls, value: object, what: str = "value") -> "Animated":
        """Accept a number, the text syntax, or the ``to_dict`` form of an Animated."""
        if isinstance(value, Animated):
            return value
        if isinstance(value, bool):
            raise InputError(f"{what} must be a number or keyframes, got {value!r}", f"pass {_EXAMPLE}")
        if isinstance(value, (int, float)):
            return cls.constant(value)
        if isinstance(value, str):
            return parse_animated(value, what)
        if isinstance(value, Mapping) and set(value) <= {"keys", "interpolation"} and "keys" in value:
            keys = value["keys"]
            if not isinstance(keys, Mapping) or not keys:
                raise InputError(f"{what}.keys must be a non-empty map of frame -> value",
                                 'pass e.g. {"keys": {"1001": 1.5, "1040": 8.0}}')
            try:
                parsed = {float(f): float(v) for f, v in keys.items()}
            except (TypeError, ValueError):
                raise InputError(f"{what}.keys must map frame numbers to numbers, got {dict(keys)!r}",
                                 'pass e.g. {"keys": {"1001": 1.5, "1040": 8.0}}') from None
            return cls.keyed(parsed, value.get("interpolation", "linear"))
        raise InputError(f"{what} must be a number or keyframes, got {value!r}", f"pass {_EXAMPLE}")

    # -- queries ------------------------------------------------------------------------
    @property
    def is_constant(self) -> bool:
        return len(self.keys) == 1

    def to_dict(self) -> Union[float, dict]:
        """A number for constants, else ``{"keys": {"1001": v, ...}, "interpolation": ...}``.

        Frame keys are strings so the result is JSON-safe as well as msgpack-safe.
        """
        if self.is_constant:
            return self.keys[0][1]
        return {"keys": {_frame_text(f): v for f, v in self.keys}, "interpolation": self.interpolation}

    def to_text(self) -> str:
        """The text syntax (inverse of :func:`parse_animated`)."""
        if self.is_constant:
            return _frame_text(self.keys[0][1])
        text = ",".join(f"{_frame_text(f)}:{_frame_text(v)}" for f, v in self.keys)
        return text + ("@smooth" if self.interpolation == "smooth" else "")

    def values(self) -> list[float]:
        return [v for _, v in self.keys]

    def value_at(self, frame: float) -> float:
        """The value at ``frame`` (may be fractional); held outside the keys."""
        keys = self.keys
        if frame <= keys[0][0]:
            return keys[0][1]
        if frame >= keys[-1][0]:
            return keys[-1][1]
        # Few keys in practice: a linear scan is clearer than bisect and just as fast.
        i = next(i for i in range(len(keys) - 1) if keys[i][0] <= frame < keys[i + 1][0])
        (f0, v0), (f1, v1) = keys[i], keys[i + 1]
        u = (frame - f0) / (f1 - f0)
        if self.interpolation == "linear":
            return v0 + (v1 - v0) * u
        m0, m1 = self._tangents()[i], self._tangents()[i + 1]
        h = f1 - f0
        # Cubic Hermite, written as v0 + ease * (v1 - v0) + tangent terms (h00 = 1 - h01),
        # so a hold between equal keys is exactly constant, not off by rounding.
        h10 = u * (1 - u) ** 2
        h01 = u * u * (3 - 2 * u)
        h11 = u * u * (u - 1)
        return v0 + h01 * (v1 - v0) + h * (h10 * m0 + h11 * m1)

    def _tangents(self) -> list[float]:
        """Fritsch-Carlson tangents: zero at extrema and ends, limited so no overshoot."""
        frames = [f for f, _ in self.keys]
        vals = [v for _, v in self.keys]
        n = len(vals)
        slopes = [(vals[i + 1] - vals[i]) / (frames[i + 1] - frames[i]) for i in range(n - 1)]
        tangents = [0.0] * n  # flat at the ends: eases in and out of the first/last key
        for i in range(1, n - 1):
            a, b = slopes[i - 1], slopes[i]
            if a * b <= 0:
                continue  # local extremum or flat: a non-zero tangent would overshoot
            # Weighted harmonic mean (Fritsch-Butland): always within the monotone region.
            h0, h1 = frames[i] - frames[i - 1], frames[i + 1] - frames[i]
            w1, w2 = 2 * h1 + h0, h1 + 2 * h0
            tangents[i] = (w1 + w2) / (w1 / a + w2 / b)
        return tangents


def _frame_text(value: float) -> str:
    """``7`` for whole numbers (exact below 2**53), else the shortest round-trip ``repr``."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def parse_animated(text: str, what: str = "value") -> Animated:
    """Parse ``'2.8'``, ``'1001:1.5,1040:8.0'`` or ``'1001:1.5,1040:8.0@smooth'``.

    Raises :class:`InputError` (with a valid example in the hint) on bad syntax.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{what}: expected a number or keyframes, got {text!r}", f"pass {_EXAMPLE}")
    body, _, interp = text.strip().partition("@")
    interp = interp.strip().lower() or "linear"
    if interp not in INTERPOLATIONS:
        raise InputError(f"{what}: unknown interpolation '@{interp}' in {text!r}",
                         f"end keyframes with @linear or @smooth, {_EXAMPLE}")
    if ":" not in body:
        if "@" in text:
            raise InputError(f"{what}: '@{interp}' needs keyframes, got {text!r}", f"pass {_EXAMPLE}")
        try:
            return Animated.constant(float(body))
        except (ValueError, InputError):
            raise InputError(f"{what}: {text!r} is not a number", f"pass {_EXAMPLE}") from None
    keys: dict[float, float] = {}
    for item in body.split(","):
        frame_text, sep, value_text = item.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            frame, value = float(frame_text), float(value_text)
        except ValueError:
            raise InputError(f"{what}: cannot read keyframe {item.strip()!r} in {text!r} "
                             "(expected FRAME:VALUE)", f"pass {_EXAMPLE}") from None
        if frame in keys:
            raise InputError(f"{what}: frame {_frame_text(frame)} is keyed twice in {text!r}",
                             f"key each frame once, {_EXAMPLE}")
        keys[frame] = value
    return Animated.keyed(keys, interp)


def load_camera(path: Union[str, Path]) -> dict[str, Animated]:
    """Read a per-frame camera JSON file into ``{field: Animated}`` (only fields present).

    Also returns ``"fps"`` as a constant Animated when the file has one.
    """
    path = Path(path)
    hint = ('write it as {"fps": 24, "frames": {"1001": {"focal_length_mm": 35, "fstop": 2.0, '
            '"focus_distance_m": 3.2, "sensor_width_mm": 36}}}')
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"camera file {path} does not exist", "check the --camera path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"camera file {path} is not readable JSON ({exc})", hint) from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), dict) or not data["frames"]:
        raise InputError(f"camera file {path} has no \"frames\" map", hint)
    unknown_top = set(data) - {"fps", "frames"}
    if unknown_top:
        raise InputError(f"camera file {path}: unknown top-level field(s) {sorted(unknown_top)}", hint)
    per_field: dict[str, dict[float, float]] = {}
    for frame_text, fields in data["frames"].items():
        try:
            frame = float(frame_text)
        except ValueError:
            raise InputError(f"camera file {path}: frame key {frame_text!r} is not a frame number",
                             hint) from None
        if not isinstance(fields, dict):
            raise InputError(f"camera file {path}: frame {frame_text} must map field names to numbers",
                             hint)
        for name, value in fields.items():
            if name in _CAMERA_IGNORED:
                continue
            if name not in CAMERA_FIELDS:
                raise InputError(f"camera file {path}: frame {frame_text} has unknown field {name!r}",
                                 f"use only {', '.join(CAMERA_FIELDS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"camera file {path}: frame {frame_text} {name} must be a number, "
                                 f"got {value!r}", hint)
            per_field.setdefault(name, {})[frame] = float(value)
    result = {name: Animated.keyed(keys) for name, keys in per_field.items()}
    if "fps" in data:
        fps = data["fps"]
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
            raise InputError(f"camera file {path}: fps must be a positive number, got {fps!r}", hint)
        result["fps"] = Animated.constant(fps)
    return result
