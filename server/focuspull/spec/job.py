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

Point coordinates (``focus.point_x/point_y``) are pixels with the origin at the top-left
corner of the image, y pointing down (image-array order).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from focuspull.errors import InputError, JobSpecError
from focuspull.io.compression import EXR_COMPRESSIONS, check_compression
from focuspull.spec.keyframes import Animated
from focuspull.stages.lens import DEPTH_MATHS

DEPTH_KINDS = ("channel", "sequence", "model")
BAD_DEPTH = ("error", "far")
LENS_MODES = ("physical", "artistic")
FOCUS_MODES = ("distance", "disparity", "point", "matte")
COMPRESSIONS = EXR_COMPRESSIONS  # one list, shared with focuspull.io (what write_image accepts)
LOSSY_COMPRESSIONS = ("pxr24", "b44", "b44a", "dwaa", "dwab")

# The render command's option for a job field, so a hint names what a CLI user types.
_OPTIONS = {
    "lens.max_size_px": "--max-size", "lens.focal_length_mm": "--focal-length", "lens.fstop": "--fstop",
    "lens.sensor_width_mm": "--sensor-width", "lens.size_px": "--size", "lens.k": "--k",
    "focus.distance_m": "--focus-distance", "focus.disparity": "--focus-disparity",
    "output.preview_fps": "--preview-fps", "output.compression": "--compression",
    "plane_spacing_px": "--plane-spacing", "aperture.rotation_deg": "--rotation",
    "aperture.roundness": "--roundness", "highlights.threshold": "--highlight-threshold",
    "highlights.gain": "--highlight-gain",
}


def _where(path: str) -> str:
    """``'lens.max_size_px' (--max-size)``: the job field and, when there is one, its option."""
    option = _OPTIONS.get(path)
    return f"'{path}'" + (f" ({option})" if option else "")


# -- field checkers: (value, key path) -> normalised value, or JobSpecError -------------------
def _fail(path: str, expected: str, value: Any) -> JobSpecError:
    return JobSpecError(f"job field '{path}' must be {expected}, got {type(value).__name__} {value!r}",
                        f"fix '{path}' in the job (see docs: focuspull.spec.job)")


def _str(value, path):
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    return value


def _opt(check):
    def checker(value, path):
        return None if value is None else check(value, path)
    checker.optional = True
    return checker


def _int(value, path):
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, "an integer", value)
    return value


def _nonneg_int(value, path):
    value = _int(value, path)
    if value < 0:
        raise _fail(path, "an integer >= 0", value)
    return value


def _float(value, path):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, "a number", value)
    if not math.isfinite(value):  # nan/inf pass every "> 0" test and then break the render
        raise JobSpecError(f"job field {_where(path)} must be a finite number, got {value!r}",
                           f"give {_OPTIONS.get(path, repr(path))} an ordinary number (not nan or inf)")
    return float(value)


def _compression(value, path):
    value = _str(value, path)
    try:
        return check_compression(value)
    except InputError as exc:
        raise JobSpecError(f"job field {_where(path)}: {exc.message}", exc.hint) from None


def _bool(value, path):
    if not isinstance(value, bool):
        raise _fail(path, "true or false", value)
    return value


def _choice(options):
    def checker(value, path):
        if not isinstance(value, str) or value not in options:
            raise JobSpecError(f"job field '{path}' must be one of {', '.join(options)}; got {value!r}",
                               f"set '{path}' to one of {', '.join(options)}")
        return value
    return checker


def _animated(value, path):
    try:
        return Animated.from_value(value, path)
    except JobSpecError:
        raise
    except Exception as exc:  # InputError from keyframes: re-raise as a job error at this path
        raise JobSpecError(f"job field '{path}' must be a number or keyframes: "
                           f"{getattr(exc, 'message', exc)}",
                           f"fix '{path}', e.g. 2.8 or {{\"keys\": {{\"1001\": 1.5, \"1040\": 8.0}}}}") from None


def _frames(value, path):
    if not isinstance(value, (list, tuple)):
        raise _fail(path, "a list of frame numbers", value)
    frames = tuple(_int(v, f"{path}[{i}]") for i, v in enumerate(value))
    if len(set(frames)) != len(frames):
        raise JobSpecError(f"job field '{path}' lists a frame twice", "list each frame once")
    return tuple(sorted(frames))


def _spec(default=dataclasses.MISSING, check: Callable = _str, factory=None):
    if factory is not None:
        return field(default_factory=factory, metadata={"check": check})
    return field(default=default, metadata={"check": check})


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
        raise JobSpecError(f"unknown job field '{where}{unknown[0]}'",
                           f"valid fields{' of ' + path if path else ''}: {', '.join(names)}")
    kwargs = {}
    for name, f in names.items():
        if name not in value:
            continue
        sub = f"{path}.{name}" if path else name
        kwargs[name] = f.metadata["check"](value[name], sub)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise JobSpecError(f"job section '{path or 'job'}' is incomplete: {exc}",
                           "add the missing field") from None


def _nested(cls):
    return lambda value, path: _build(cls, value, path)


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

    pattern: Optional[str] = _spec(None, _opt(_str))
    transfer: Optional[str] = _spec(None, _opt(_str))  # display-referred input: e.g. "srgb"


@dataclass(frozen=True)
class DepthSpec:
    """Depth source.  ``channel``: a channel of the input (None = find Z / depth.Z ...);
    ``sequence``: a separate sequence ``pattern``; ``model``: estimate with ``model`` from
    local weights in ``checkpoint_dir``.  ``stabilise_window`` > 0 smooths depth over
    +-window frames (0 = off)."""

    kind: str = _spec("channel", _choice(DEPTH_KINDS))
    channel: Optional[str] = _spec(None, _opt(_str))
    pattern: Optional[str] = _spec(None, _opt(_str))
    model: Optional[str] = _spec(None, _opt(_str))
    checkpoint_dir: Optional[str] = _spec(None, _opt(_str))
    depth_math: str = _spec("depth", _choice(DEPTH_MATHS))
    bad_depth: str = _spec("error", _choice(BAD_DEPTH))
    stabilise_window: int = _spec(0, _nonneg_int)


@dataclass(frozen=True)
class LensSpec:
    """``physical``: thin lens from focal length, f-stop and sensor width (metric depth).
    ``artistic``: ``size_px`` (CoC radius at infinity, ZDefocus "size") or ``k`` (CoC px per
    unit disparity, Any-to-Bokeh K).  ``max_size_px`` caps the CoC radius in both modes."""

    mode: str = _spec("physical", _choice(LENS_MODES))
    focal_length_mm: Animated = _spec(check=_animated, factory=lambda: Animated.constant(50.0))
    fstop: Animated = _spec(check=_animated, factory=lambda: Animated.constant(2.8))
    sensor_width_mm: Animated = _spec(check=_animated, factory=lambda: Animated.constant(36.0))
    cg_camera: bool = _spec(False, _bool)
    size_px: Optional[Animated] = _spec(None, _opt(_animated))
    k: Optional[Animated] = _spec(None, _opt(_animated))
    max_size_px: Optional[float] = _spec(None, _opt(_float))


@dataclass(frozen=True)
class FocusSpec:
    """What is sharp.  ``distance``: ``distance_m`` (needs metric depth); ``disparity``: the
    disparity to keep sharp, in the units of ``depth.depth_math``: 1/metres for ``depth``,
    the channel's own value for ``far=0`` (1/z) and ``disparity_norm`` (0..1, near = 1; also
    depth models); ``point``: the depth under ``point_x/point_y`` (px,
    top-left origin), tracked from ``track_from_frame`` when set; ``matte``: the depth under
    the matte channel ``matte_channel``.  ``smoothing_window`` > 0 smooths the focus over
    +-window frames (point/matte only)."""

    mode: str = _spec("distance", _choice(FOCUS_MODES))
    distance_m: Animated = _spec(check=_animated, factory=lambda: Animated.constant(3.0))
    disparity: Optional[Animated] = _spec(None, _opt(_animated))
    point_x: Optional[Animated] = _spec(None, _opt(_animated))
    point_y: Optional[Animated] = _spec(None, _opt(_animated))
    track_from_frame: Optional[int] = _spec(None, _opt(_int))
    point_radius_px: float = _spec(4.0, _float)
    matte_channel: Optional[str] = _spec(None, _opt(_str))
    smoothing_window: int = _spec(0, _nonneg_int)


@dataclass(frozen=True)
class ApertureSpec:
    """Bokeh shape: ``blades`` = 0 is a disc; rotation in degrees; roundness 0..1."""

    blades: int = _spec(0, _nonneg_int)
    rotation_deg: float = _spec(0.0, _float)
    roundness: float = _spec(0.0, _float)


@dataclass(frozen=True)
class HighlightSpec:
    """Bloom for display-referred input: pixels above ``threshold`` are boosted by ``gain``.
    ``threshold`` None = off (scene-linear EXRs already carry their highlights)."""

    threshold: Optional[float] = _spec(None, _opt(_float))
    gain: float = _spec(4.0, _float)


@dataclass(frozen=True)
class OutputSpec:
    """Where results go.  ``pattern`` None = in-band (returned to the caller).
    ``resume`` skips complete frames; ``overwrite`` replaces existing ones; neither = refuse.
    ``setup_view`` writes the focal-plane setup view instead of the render.  ``keep_depth``
    passes the input depth channel through to EXR output."""

    pattern: Optional[str] = _spec(None, _opt(_str))
    compression: str = _spec("zip", _compression)
    half: bool = _spec(True, _bool)
    resume: bool = _spec(False, _bool)
    overwrite: bool = _spec(False, _bool)
    preview: Optional[str] = _spec(None, _opt(_str))
    preview_fps: float = _spec(24.0, _float)
    setup_view: bool = _spec(False, _bool)
    keep_depth: bool = _spec(True, _bool)


@dataclass(frozen=True)
class RefineSpec:
    """The learned refiner after the classical render.  ``model_dir`` None = off; else the
    folder of a model written by ``focuspull train`` (e.g. models/refiner-small)."""

    model_dir: Optional[str] = _spec(None, _opt(_str))


@dataclass(frozen=True)
class RenderJob:
    """One render.  ``frames`` empty = every frame of the input on disk (or in-band)."""

    input: InputSpec = _spec(check=_nested(InputSpec), factory=InputSpec)
    frames: tuple = _spec(check=_frames, factory=tuple)
    depth: DepthSpec = _spec(check=_nested(DepthSpec), factory=DepthSpec)
    lens: LensSpec = _spec(check=_nested(LensSpec), factory=LensSpec)
    focus: FocusSpec = _spec(check=_nested(FocusSpec), factory=FocusSpec)
    aperture: ApertureSpec = _spec(check=_nested(ApertureSpec), factory=ApertureSpec)
    highlights: HighlightSpec = _spec(check=_nested(HighlightSpec), factory=HighlightSpec)
    output: OutputSpec = _spec(check=_nested(OutputSpec), factory=OutputSpec)
    refine: RefineSpec = _spec(check=_nested(RefineSpec), factory=RefineSpec)
    device: str = _spec("cpu", _str)
    plane_spacing_px: float = _spec(1.0, _float)

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
        # The model's folder is a path (mounts differ); whether a refiner runs changes pixels.
        plain["refine"]["model_dir"] = plain["refine"]["model_dir"] is not None
        # Lossless compressions store the same pixels: resuming with piz after zip is fine.
        if plain["output"]["compression"].split(":")[0] not in LOSSY_COMPRESSIONS:
            plain["output"]["compression"] = "lossless"
        text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_consistent(job: RenderJob) -> None:
    """Cross-field rules that the types alone cannot express (no file access here)."""
    d, lens, focus = job.depth, job.lens, job.focus
    if d.kind == "sequence" and not d.pattern:
        raise JobSpecError("depth.kind is 'sequence' but depth.pattern is not set",
                           "pass the depth sequence, e.g. --depth shot/depth.####.exr")
    if d.kind == "model" and not d.model:
        raise JobSpecError("depth.kind is 'model' but depth.model is not set",
                           "name the depth estimator, e.g. depth.model = 'tiny'")
    if lens.mode == "artistic" and (lens.size_px is None) == (lens.k is None):
        raise JobSpecError("an artistic lens needs exactly one of lens.size_px and lens.k",
                           "pass --size PX (blur at infinity) or --k K, not both")
    relative = d.kind == "model" or d.depth_math == "disparity_norm"
    if lens.mode == "physical" and relative:
        raise JobSpecError("a physical lens (focal length, f-stop) needs metric depth, "
                           f"but the depth is relative ({'model' if d.kind == 'model' else 'disparity_norm'})",
                           "use --size PX or --k K for relative depth, or give metric depth")
    if focus.mode == "distance" and relative and d.depth_math != "direct":
        raise JobSpecError("focus by distance (metres) needs metric depth, but the depth is relative",
                           "focus with --focus-point X,Y, --focus-matte CHANNEL or focus.disparity")
    if focus.mode == "disparity" and focus.disparity is None:
        raise JobSpecError("focus.mode is 'disparity' but focus.disparity is not set",
                           "set focus.disparity to the depth value to keep sharp")
    if focus.mode == "point" and (focus.point_x is None or focus.point_y is None):
        raise JobSpecError("focus.mode is 'point' but focus.point_x/point_y are not set",
                           "pass --focus-point X,Y (pixels from the top-left corner)")
    if focus.mode == "matte" and not focus.matte_channel:
        raise JobSpecError("focus.mode is 'matte' but focus.matte_channel is not set",
                           "pass --focus-matte CHANNEL (e.g. --focus-matte matte.A)")
    if focus.mode == "matte" and job.input.pattern is None:
        raise JobSpecError("focus by matte needs the input as a sequence on disk",
                           "focus in-band renders with a point or a distance")
    if job.output.resume and job.output.overwrite:
        raise JobSpecError("output.resume and output.overwrite are both set",
                           "pass --resume to keep finished frames, or --overwrite to redo them")
    if focus.mode == "distance":
        _check_positive(focus.distance_m, "focus.distance_m", "a focus distance in metres",
                        "pass a focus distance in metres > 0, e.g. --focus-distance 3 "
                        "(or fix focus_distance_m in the --camera file)")
    if lens.max_size_px is not None and lens.max_size_px < 0:
        raise JobSpecError(f"job field {_where('lens.max_size_px')} must be >= 0, got {lens.max_size_px:g}",
                           "pass the largest blur radius in pixels, e.g. --max-size 40 (leave it out for no cap)")
    if job.plane_spacing_px <= 0:
        raise JobSpecError(f"plane_spacing_px must be > 0, got {job.plane_spacing_px}",
                           "use 1.0 (default) or larger for faster, coarser renders")
    if job.output.preview_fps <= 0:
        raise JobSpecError(f"output.preview_fps must be > 0, got {job.output.preview_fps}",
                           "use the shot's frame rate, e.g. 24")


def _check_positive(value: Animated, path: str, what: str, hint: str) -> None:
    # Linear and smooth interpolation never overshoot, so keys > 0 means every frame > 0.
    bad = [(frame, v) for frame, v in value.keys if not v > 0]
    if bad:
        frame, v = bad[0]
        where = "" if value.is_constant else f" at frame {frame:g}"
        raise JobSpecError(f"{what} must be > 0, but {_where(path)} is {v:g}{where}", hint)
