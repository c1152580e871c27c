"""The job spec: one frozen description of a render, shared by the CLI, the server and the hosts.

No torch, no numpy: host Pythons (Nuke, Resolve) build jobs with ``focuspull.client``.

A job is plain data: ``RenderJob.from_dict(mapping)`` validates a (msgpack/JSON) map and
``job.to_dict()`` gives it back.  Unknown keys and wrong types raise
:class:`~focuspull.errors.JobSpecError` naming the key path (``lens.fstop``) and the
expected type.  Per-frame values are :class:`~focuspull.spec.keyframes.Animated` and travel as
a number or ``{"keys": {"1001": 1.5, ...}, "interpolation": "linear"|"smooth"}``.

Example (JSON)::

    {"input": {"pattern": "shot/plate.####.exr"},
     "frames": [1001, 1002, 1003],
     "depth": {"kind": "channel", "channel": "Z", "depth_math": "depth"},
     "lens": {"mode": "physical", "focal_length_mm": 35, "fstop": 2.0},
     "focus": {"mode": "distance", "distance_m": {"keys": {"1001": 1.5, "1003": 8}}},
     "output": {"pattern": "out/plate_dof.####.exr"}}

Point coordinates (``focus.point_x/point_y``) are pixels of the display window with the
origin at the top-left corner, y pointing down (image-array order), or with
``focus.origin = "bottom-left"`` at the bottom-left corner, y up (Nuke's ``focal_point``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from focuspull.errors import InputError, JobSpecError
from focuspull.spec.compression import check_compression
from focuspull.spec.fields import LOSSY_COMPRESSIONS, MAX_FRAMES, FRAME_NUMBER_LIMIT, Field, field_info, shorten
from focuspull.spec.keyframes import Animated


# -- field checkers, built from the registry: (value, key path) -> normalised value ------------
def _fail(path: str, expected: str, value: Any) -> JobSpecError:
    return JobSpecError(f"job field '{path}' must be {expected}, got {type(value).__name__} {shorten(value)}",
                        f"fix '{path}' in the job", field=path)


def _number(entry: Field, value: float, path: str, where: str = "") -> float:
    problem = entry.check_number(value)
    if problem:
        raise JobSpecError(f"job field '{path}'{where} {problem}, got {shorten(value)}",
                           f"set '{path}' to {entry.range_text() or 'an ordinary number'}", field=path)
    return value


def _check_str(entry: Field, value, path):
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    if len(value) > entry.max_chars:
        raise JobSpecError(f"job field '{path}' is {len(value)} characters long; at most "
                           f"{entry.max_chars} are accepted", f"shorten '{path}'", field=path)
    if "\x00" in value:
        raise JobSpecError(f"job field '{path}' contains a NUL character", f"fix '{path}'", field=path)
    return value


def _check_int(entry: Field, value, path):
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "an integer", value)
    return _number(entry, value, path)


def _check_float(entry: Field, value, path):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a number", value)
    return float(_number(entry, float(value), path))


def _check_bool(entry: Field, value, path):
    if not isinstance(value, bool):
        raise _fail(path, "true or false", value)
    return value


def _check_choice(entry: Field, value, path):
    value = entry.normalise_choice(value)
    if not isinstance(value, str) or value not in entry.choices:
        raise JobSpecError(f"job field '{path}' must be one of {', '.join(entry.choices)}; got {shorten(value)}",
                           f"set '{path}' to one of {', '.join(entry.choices)}", field=path)
    return value


def _check_compression(entry: Field, value, path):
    value = _check_str(entry, value, path)
    try:
        return check_compression(value)
    except InputError as exc:
        raise JobSpecError(f"job field '{path}': {exc.message}", exc.hint, field=path) from None


def _check_animated(entry: Field, value, path):
    """A number, keyframe text (``1001:1.5,1040:8@smooth``) or ``{"keys": ...}``; every key in
    range.  Linear and smooth interpolation never overshoot, so keys in range = every frame."""
    if isinstance(value, str) and len(value) > 16 * 1024:
        raise JobSpecError(f"job field '{path}' is {len(value)} characters of keyframes",
                           f"give '{path}' fewer keyframes", field=path)
    try:
        animated = Animated.from_value(value, path)
    except InputError as exc:
        raise JobSpecError(f"job field '{path}' must be a number or keyframes: {exc.message}",
                           f"fix '{path}', e.g. 2.8 or \"1001:1.5,1040:8@smooth\"", field=path) from None
    for frame, v in animated.keys:
        where = "" if animated.is_constant else f" at frame {frame:g}"
        _number(entry, v, path, where)
        if entry.whole and not float(v).is_integer():
            raise JobSpecError(f"job field '{path}'{where} must be a whole number, got {shorten(v)}",
                               f"set '{path}' to whole numbers, e.g. 6 or \"1001:5,1040:7\"", field=path)
    return animated


_CHECKERS = {"str": _check_str, "path": _check_str, "int": _check_int, "float": _check_float,
             "bool": _check_bool, "choice": _check_choice, "compression": _check_compression}


def _checker(entry: Field) -> Callable:
    check = _check_animated if entry.animatable else _CHECKERS[entry.kind]

    def checker(value, path):
        if value is None and entry.optional:
            return None
        return check(entry, value, path)
    return checker


def _frames(value, path):
    if not isinstance(value, (list, tuple)):
        raise _fail(path, "a list of frame numbers", value)
    if len(value) > MAX_FRAMES:
        raise JobSpecError(f"job field '{path}' lists {len(value)} frames; at most {MAX_FRAMES} per job",
                           "split the range into several jobs", field=path)
    frames = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > FRAME_NUMBER_LIMIT:
            raise _fail(f"{path}[{i}]", f"a frame number (an integer within +-{FRAME_NUMBER_LIMIT})", v)
        frames.append(v)
    if len(set(frames)) != len(frames):
        raise JobSpecError(f"job field '{path}' lists a frame twice", "list each frame once", field=path)
    return tuple(sorted(frames))


def _spec(path: str, factory=None):
    """A dataclass field whose default and validator come from the registry entry ``path``."""
    entry = field_info(path)
    metadata = {"check": _checker(entry), "path": path}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    if entry.animatable and entry.default is not None:
        return field(default_factory=lambda: Animated.constant(entry.default), metadata=metadata)
    return field(default=entry.default, metadata=metadata)


def _build(cls, value, path: str):
    """Instantiate dataclass ``cls`` from a mapping, checking every field strictly."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise _fail(path or "job", "a map (object)", value)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in value if k not in names]
    if unknown:
        where = f"{path}." if path else ""
        raise JobSpecError(f"unknown job field '{where}{shorten(unknown[0], quote=False)}'",
                           f"valid fields{' of ' + path if path else ''}: {', '.join(names)}")
    kwargs = {}
    for name, f in names.items():
        if name not in value:
            continue
        sub = f"{path}.{name}" if path else name
        kwargs[name] = f.metadata["check"](value[name], sub)
    return cls(**kwargs)


def _nested(cls):
    return {"check": lambda value, path: _build(cls, value, path)}


def _section(cls):
    return field(default_factory=cls, metadata=_nested(cls))


def _plain(value):
    if isinstance(value, Animated):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# -- the spec -----------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """Where the frames come from: a sequence pattern (``plate.####.exr``, ``%04d``), or
    ``None`` when the frames travel in-band with the request."""

    pattern: Optional[str] = _spec("input.pattern")
    transfer: Optional[str] = _spec("input.transfer")  # display-referred input: e.g. "srgb"


@dataclass(frozen=True)
class ColourSpec:
    """OpenColorIO: the config (None = ``$OCIO``, else the built-in ACES studio config), the
    scene-linear working space (None = the config's ``scene_linear`` role), the colour space
    of non-EXR output (None = the input's own), and the display + view of previews."""

    config: Optional[str] = _spec("colour.config")
    working_space: Optional[str] = _spec("colour.working_space")
    output_space: Optional[str] = _spec("colour.output_space")
    display: Optional[str] = _spec("colour.display")
    view: Optional[str] = _spec("colour.view")


@dataclass(frozen=True)
class DepthSpec:
    """Depth source.  ``channel``: a channel of the input (None = find Z / depth.Z ...);
    ``sequence``: a separate sequence ``pattern``; ``model``: estimate with ``model`` from
    local weights in ``checkpoint_dir``.  ``stabilise_window`` > 0 smooths depth over
    +-window frames (0 = off)."""

    kind: str = _spec("depth.kind")
    channel: Optional[str] = _spec("depth.channel")
    pattern: Optional[str] = _spec("depth.pattern")
    model: Optional[str] = _spec("depth.model")
    checkpoint_dir: Optional[str] = _spec("depth.checkpoint_dir")
    depth_math: str = _spec("depth.depth_math")
    bad_depth: str = _spec("depth.bad_depth")
    stabilise_window: int = _spec("depth.stabilise_window")


@dataclass(frozen=True)
class LensSpec:
    """``physical``: thin lens from focal length, f-stop and sensor width (metric depth).
    ``artistic``: ``size_px`` (CoC radius at infinity, ZDefocus "size") or ``k`` (CoC px per
    unit disparity, Any-to-Bokeh K).  ``max_size_px`` caps the CoC radius in both modes."""

    mode: str = _spec("lens.mode")
    focal_length_mm: Animated = _spec("lens.focal_length_mm")
    fstop: Animated = _spec("lens.fstop")
    sensor_width_mm: Animated = _spec("lens.sensor_width_mm")
    cg_camera: bool = _spec("lens.cg_camera")
    size_px: Optional[Animated] = _spec("lens.size_px")
    k: Optional[Animated] = _spec("lens.k")
    max_size_px: Optional[Animated] = _spec("lens.max_size_px")


@dataclass(frozen=True)
class FocusSpec:
    """What is sharp.  ``distance``: ``distance_m`` (needs metric depth); ``disparity``: the
    disparity to keep sharp, in the units of ``depth.depth_math``: 1/metres for ``depth``,
    the channel's own value for ``far=0`` (1/z) and ``disparity_norm`` (0..1, near = 1; also
    depth models); ``point``: the depth under ``point_x/point_y`` (px,
    top-left origin), tracked from ``track_from_frame`` when set; ``matte``: the depth under
    the matte channel ``matte_channel``.  ``smoothing_window`` > 0 smooths the focus over
    +-window frames (point/matte only)."""

    mode: str = _spec("focus.mode")
    distance_m: Animated = _spec("focus.distance_m")
    disparity: Optional[Animated] = _spec("focus.disparity")
    point_x: Optional[Animated] = _spec("focus.point_x")
    point_y: Optional[Animated] = _spec("focus.point_y")
    origin: str = _spec("focus.origin")
    track_from_frame: Optional[int] = _spec("focus.track_from_frame")
    point_radius_px: float = _spec("focus.point_radius_px")
    matte_channel: Optional[str] = _spec("focus.matte_channel")
    smoothing_window: int = _spec("focus.smoothing_window")
    dof: Animated = _spec("focus.dof")


@dataclass(frozen=True)
class ApertureSpec:
    """Bokeh shape: ``blades`` = 0 is a disc; rotation in degrees; roundness 0..1 (all
    animatable; blade counts hold from key to key).  ``aspect``: width / height of the bokeh
    after desqueeze (ZDefocus ``aspect``; the plate's pixel aspect is allowed for).
    ``filter_image``: a custom bokeh shape image (replaces blades)."""

    blades: Animated = _spec("aperture.blades")
    rotation_deg: Animated = _spec("aperture.rotation_deg")
    roundness: Animated = _spec("aperture.roundness")
    aspect: Animated = _spec("aperture.aspect")
    filter_image: Optional[str] = _spec("aperture.filter_image")


@dataclass(frozen=True)
class HighlightSpec:
    """Bloom for display-referred input: pixels above ``threshold`` are boosted by ``gain``.
    ``threshold`` None = off (scene-linear EXRs already carry their highlights)."""

    threshold: Optional[float] = _spec("highlights.threshold")
    gain: float = _spec("highlights.gain")


@dataclass(frozen=True)
class OutputSpec:
    """Where results go.  ``pattern`` None = in-band (returned to the caller).
    ``resume`` skips complete frames; ``overwrite`` replaces existing ones; neither = refuse.
    ``setup_view`` writes the focal-plane setup view instead of the render.  ``keep_depth``
    passes the input depth channel through to EXR output; ``channels`` names other channels
    or layers of the input rendered with the same bokeh (the rest pass through untouched)."""

    pattern: Optional[str] = _spec("output.pattern")
    compression: Optional[str] = _spec("output.compression")
    half: bool = _spec("output.half")
    resume: bool = _spec("output.resume")
    overwrite: bool = _spec("output.overwrite")
    preview: Optional[str] = _spec("output.preview")
    preview_fps: float = _spec("output.preview_fps")
    setup_view: bool = _spec("output.setup_view")
    keep_depth: bool = _spec("output.keep_depth")
    channels: Optional[str] = _spec("output.channels")


@dataclass(frozen=True)
class RefineSpec:
    """The learned refiner after the classical render.  ``model_dir`` None = off; else the
    folder of a model written by ``focuspull train`` (e.g. models/refiner-small)."""

    model_dir: Optional[str] = _spec("refine.model_dir")
    precision: str = _spec("refine.precision")


@dataclass(frozen=True)
class RenderJob:
    """One render.  ``frames`` empty = every frame of the input on disk (or in-band)."""

    input: InputSpec = _section(InputSpec)
    colour: ColourSpec = _section(ColourSpec)
    frames: tuple = field(default_factory=tuple, metadata={"check": _frames})
    depth: DepthSpec = _section(DepthSpec)
    lens: LensSpec = _section(LensSpec)
    focus: FocusSpec = _section(FocusSpec)
    aperture: ApertureSpec = _section(ApertureSpec)
    highlights: HighlightSpec = _section(HighlightSpec)
    output: OutputSpec = _section(OutputSpec)
    refine: RefineSpec = _section(RefineSpec)
    device: str = _spec("device")
    plane_spacing_px: float = _spec("plane_spacing_px")

    def __post_init__(self) -> None:
        _check_consistent(self)

    @classmethod
    def from_dict(cls, mapping: Mapping) -> "RenderJob":
        """Validate a plain map (from JSON, msgpack or the CLI) into a job."""
        return _build(cls, mapping, "")

    def to_dict(self) -> dict:
        """A plain, msgpack/JSON-safe map; ``from_dict(job.to_dict()) == job``."""
        return _plain(self)

    def replace(self, **changes) -> "RenderJob":
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """A short hash of everything that changes the rendered pixels of a frame.

        Frames, device, paths (mounts differ between farm hosts) and the resume /
        overwrite / preview settings are left out, so every chunk of one render has the
        same fingerprint and a frame of another render (other lens, setup view...) has
        another.  Written into EXR output; ``--resume`` skips only frames that match.
        """
        plain = self.to_dict()
        for key in ("frames", "device"):
            plain.pop(key)
        plain["input"].pop("pattern")
        for key in ("pattern", "checkpoint_dir"):
            plain["depth"].pop(key)
        for key in ("pattern", "resume", "overwrite", "preview", "preview_fps"):
            plain["output"].pop(key)
        # The model's folder is a path (mounts differ); whether a refiner runs changes pixels,
        # and in which precision (which is nothing without one).
        plain["refine"]["model_dir"] = plain["refine"]["model_dir"] is not None
        if not plain["refine"]["model_dir"]:
            plain["refine"].pop("precision")
        # Lossless compressions store the same pixels: resuming with piz after zip is fine.
        if (plain["output"]["compression"] or "input").split(":")[0] not in LOSSY_COMPRESSIONS:
            plain["output"]["compression"] = "lossless"
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _refuse(message: str, hint: str, path: str) -> JobSpecError:
    return JobSpecError(message, hint, field=path)


def _check_consistent(job: RenderJob) -> None:
    """Cross-field rules that the registry's per-field bounds cannot express (no file access).

    Hints name job fields; each front end says them in its own words (``describe``)."""
    d, lens, focus = job.depth, job.lens, job.focus
    if d.kind == "sequence" and not d.pattern:
        raise _refuse("depth.kind is 'sequence' but depth.pattern is not set",
                      "give the depth sequence, e.g. shot/depth.####.exr", "depth.pattern")
    if d.kind == "model" and not d.model:
        raise _refuse("depth.kind is 'model' but depth.model is not set",
                      "name the depth estimator, e.g. 'tiny'", "depth.model")
    if lens.mode == "artistic" and (lens.size_px is None) == (lens.k is None):
        raise _refuse("an artistic lens needs exactly one of lens.size_px and lens.k",
                      "set the blur size at infinity (lens.size_px) or K (lens.k), not both", "lens.size_px")
    relative = d.kind == "model" or d.depth_math == "disparity_norm"
    if lens.mode == "physical" and relative:
        raise _refuse("a physical lens (focal length, f-stop) needs metric depth, "
                      f"but the depth is relative ({'model' if d.kind == 'model' else 'disparity_norm'})",
                      "use an artistic blur size (lens.size_px or lens.k) for relative depth, "
                      "or give metric depth", "lens.mode")
    if focus.mode == "distance" and relative and d.depth_math != "direct":
        raise _refuse("focus by distance (metres) needs metric depth, but the depth is relative",
                      "focus on a point (focus.point_x/point_y), a matte or a disparity instead", "focus.mode")
    if focus.mode == "disparity" and focus.disparity is None:
        raise _refuse("focus.mode is 'disparity' but focus.disparity is not set",
                      "set focus.disparity to the depth value to keep sharp", "focus.disparity")
    if focus.mode == "point" and (focus.point_x is None or focus.point_y is None):
        raise _refuse("focus.mode is 'point' but focus.point_x/point_y are not set",
                      "pick the focal point (pixels from the corner focus.origin names)", "focus.point_x")
    if focus.mode == "matte" and not focus.matte_channel:
        raise _refuse("focus.mode is 'matte' but focus.matte_channel is not set",
                      "name the matte channel, e.g. matte.A", "focus.matte_channel")
    if focus.mode == "matte" and job.input.pattern is None:
        raise _refuse("focus by matte needs the input as a sequence on disk",
                      "focus in-band renders with a point or a distance", "focus.mode")
    if job.output.resume and job.output.overwrite:
        raise _refuse("output.resume and output.overwrite are both set",
                      "resume to keep finished frames, or overwrite to redo them, not both", "output.resume")
    for frame, blades in job.aperture.blades.keys:
        if blades in (1, 2):
            where = "" if job.aperture.blades.is_constant else f" at frame {frame:g}"
            raise _refuse(f"aperture.blades is {blades:g}{where}: an aperture needs 3 or more blades",
                          "set aperture.blades to 0 for a round disc, or 3 or more", "aperture.blades")
