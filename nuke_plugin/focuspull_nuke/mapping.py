"""Knob values and animation curves -> the job map (``focuspull.spec.job`` shape).

Reads through a ``reader`` with two calls, both answered by the adapter from the node:

* ``value(name)`` -- the knob's value (a tuple for the XY knob);
* ``curves(name)`` -- one :class:`~focuspull_nuke.curves.Curve` or None per knob index.

The focal point: Nuke's picker puts the origin at the bottom-left corner with pixel
corners on integers, y up; the job's point has the origin on the centre of the top-left
pixel, y down (``focuspull.stages.focus``).  So ``x_job = x - 0.5`` and
``y_job = height - 0.5 - y``, with ``height`` the input format's height.
"""
from __future__ import annotations

from typing import Sequence

from focuspull.errors import JobSpecError
from focuspull.spec.fields import field_info

from focuspull_nuke.curves import to_keyframes
from focuspull_nuke.knobs import ENUM_BOOLS, TABLE, KnobSpec


def nuke_to_job_point(x: float, y: float, height: int) -> tuple[float, float]:
    return x - 0.5, height - 0.5 - y


def _set(job: dict, path: str, value) -> None:
    section, _, name = path.rpartition(".")
    (job.setdefault(section, {}) if section else job)[name] = value


def _numeric(reader, spec: KnobSpec, index: int, frames, convert, path: str, baked: list):
    curves = reader.curves(spec.name)
    curve = curves[index] if curves and index < len(curves) else None
    if curve is None:
        raw = reader.value(spec.name)
        raw = raw[index] if isinstance(raw, (tuple, list)) else raw
        return convert(raw)
    if not spec.animatable:
        values = {convert(curve.evaluate(f)) for f in frames}
        if len(values) == 1:
            return values.pop()  # keyed but flat over the range: one value, as the job takes
        raise JobSpecError(f"job field '{path}' is animated, but it takes one value for the whole range",
                           f"remove the animation of '{path}' (or keep it flat over the frames)", field=path)
    value, was_baked = to_keyframes(curve, frames, convert)
    if was_baked and isinstance(value, dict):
        baked.append(spec.name)
    return value


def job_from_knobs(reader, frames: Sequence[int], height: int, table=TABLE) -> tuple[dict, list[str]]:
    """(job map without input/output patterns, names of knobs whose curves were baked)."""
    frames = list(frames)
    job: dict = {"frames": frames}
    baked: list[str] = []
    focus_mode = reader.value("focus_mode")
    for spec in table:
        if spec.enable is not None and not reader.value(spec.enable):
            continue  # optional value switched off: the job's None
        if spec.cls == "xy":
            if focus_mode != "point":
                continue
            px, py = spec.paths
            _set(job, px, _numeric(reader, spec, 0, frames, lambda v: float(v) - 0.5, px, baked))
            _set(job, py, _numeric(reader, spec, 1, frames, lambda v: height - 0.5 - float(v), py, baked))
            continue
        path = spec.paths[0]
        entry = field_info(path)
        if spec.cls == "double":
            value = _numeric(reader, spec, 0, frames, float, path, baked)
        elif spec.cls == "int":
            value = _numeric(reader, spec, 0, frames, float, path, baked)
            value = int(value) if not isinstance(value, dict) and float(value).is_integer() else value
        elif spec.cls == "enum" and path in ENUM_BOOLS:
            value = reader.value(spec.name) == ENUM_BOOLS[path][1]
        elif spec.cls in ("string", "file"):
            value = reader.value(spec.name) or None
            if value is None and not entry.optional:
                continue  # empty = the job's default
        else:
            value = reader.value(spec.name)
        _set(job, path, value)
    return job, sorted(set(baked))
