"""The one field registry: every job field with its type, unit, default, bounds and help.

Pure Python (no numpy).  Everything that names or checks a job field reads it from here:

* :mod:`focuspull.spec.job` builds each field's validator from its entry (type, range,
  choices, length), so a job the spec accepts renders and a bad one is refused at submit;
* the ``focuspull render`` options are generated from the entries that have a ``flag``;
* the Nuke node and the Resolve/Fusion scripts build their knob / dialog tables from it;
* every front end turns a :class:`~focuspull.errors.JobSpecError`'s ``field`` into its own
  words with :func:`describe` (a flag, a knob, a dialog label).

Adding a job field = one :class:`Field` here plus the dataclass attribute in ``job.py``.

Example::

    >>> field_info("aperture.blades").maximum
    64
    >>> describe("lens.fstop", "cli")
    '--fstop'
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional

from focuspull.spec.compression import EXR_COMPRESSIONS  # noqa: F401 - part of the vocabulary

DEPTH_KINDS = ("channel", "sequence", "model")
#: What depth values mean (ZDefocus ``math``); see focuspull.stages.lens.
DEPTH_MATHS = ("depth", "far=0", "far=-0", "disparity_norm", "direct")
#: Other spellings of the depth maths (ZDefocus writes ``far = 0``; Maya's negative 1/z is
#: ``far = -0``), folded to the names above by :func:`normalise_choice`.
DEPTH_MATH_SPELLINGS = (("far = 0", "far=0"), ("far = -0", "far=-0"), ("1/z", "far=0"), ("-1/z", "far=-0"),
                        ("distance", "depth"), ("coc", "direct"))
FOCUS_ORIGINS = ("top-left", "bottom-left")
BAD_DEPTH = ("error", "far")
LENS_MODES = ("physical", "artistic")
FOCUS_MODES = ("distance", "disparity", "point", "matte")
#: Precision the refiner's network runs in (docs/refine.md): auto = fp16 on CUDA, fp32 on the CPU.
REFINE_PRECISIONS = ("auto", "fp32", "bf16")
LOSSY_COMPRESSIONS = ("pxr24", "b44", "b44a", "dwaa", "dwab")
#: The longest path / name / device string a job may carry (a hostile 5000-char path is refused
#: before it reaches the file system).
MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 128
MAX_FRAMES = 1_000_000
FRAME_NUMBER_LIMIT = 100_000_000
#: Bounds that are policy, not physics (kept here so every front end shows the same range).
MAX_RADIUS_PX = 1024.0
MAX_WINDOW_FRAMES = 64
MAX_BLADES = 64

FRONT_ENDS = ("job", "cli", "nuke", "dialog")


@dataclass(frozen=True)
class Field:
    """One job field.

    Attributes:
        path: dotted job path, e.g. ``"aperture.blades"``; errors name it.
        kind: ``float``, ``int``, ``bool``, ``str``, ``path``, ``choice`` or ``compression``.
        default: the value when the field is absent (``None`` = not set).
        unit: ``mm``, ``m``, ``px``, ``deg``, ``1/m``, ``fps``, ``frames`` or ``""``.
        minimum, maximum: inclusive bounds for numbers (every key of an animated value).
        choices: allowed strings for ``choice``.
        animatable: takes keyframes (``1001:1.5,1040:8@smooth`` or ``{"keys": {...}}``).
        optional: ``None`` is allowed.
        label: the artist's words (a dialog label, a knob label).
        help: one line of help.
        flag: the ``focuspull render`` option, or None when the CLI sets it otherwise.
        knob: the Nuke knob name (ZDefocus names where ZDefocus has one).
        max_chars: longest string accepted.
        metavar: how help texts show the value (``MM``, ``N``); derived from the unit if empty.
        spellings: other accepted spellings of ``choices``, ``((spelling, choice), ...)``.
        whole: an animatable number whose every key must be a whole number (blades).
    """

    path: str
    kind: str
    default: Any = None
    unit: str = ""
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: tuple = ()
    animatable: bool = False
    optional: bool = False
    label: str = ""
    help: str = ""
    flag: Optional[str] = None
    knob: Optional[str] = None
    max_chars: int = MAX_NAME_CHARS
    metavar: str = ""
    spellings: tuple = ()
    whole: bool = False

    def normalise_choice(self, value):
        """A ``choice`` spelled another accepted way (case, spaces) -> its registry name;
        anything else comes back unchanged (and is then refused by the checker)."""
        if self.kind != "choice" or not isinstance(value, str):
            return value
        folded = " ".join(value.strip().lower().split())
        for choice in self.choices:
            if folded == choice.lower() or folded.replace(" ", "") == choice.lower():
                return choice
        return dict(self.spellings).get(folded, value)

    @property
    def section(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    def range_text(self) -> str:
        """``'0.5 .. 1024 mm'``: the allowed range in words, for errors and tooltips."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.minimum is None and self.maximum is None:
            return ""
        unit = f" {self.unit}" if self.unit else ""
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        hi = "" if self.maximum is None else f"{self.maximum:g}"
        if not hi:
            return f">= {lo}{unit}"
        if not lo:
            return f"<= {hi}{unit}"
        return f"{lo} .. {hi}{unit}"

    def check_number(self, value: float) -> Optional[str]:
        """None when ``value`` is in range, else what is wrong (no value echoed whole)."""
        if not math.isfinite(value):
            return "must be a finite number"
        if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum):
            return f"must be {self.range_text()}"
        return None


def _f(path, kind, default=None, **kw) -> Field:
    return Field(path, kind, default, **kw)


FIELDS: tuple[Field, ...] = (
    # -- input
    _f("input.pattern", "path", None, optional=True, max_chars=MAX_PATH_CHARS, label="Input",
       help="input sequence, e.g. shot.####.exr (None: frames travel in-band)"),
    _f("input.transfer", "str", None, optional=True, label="Input colour space", flag="--input-transfer",
       knob="input_colorspace", metavar="SPACE",
       help="colour space of the input: srgb, rec709, gamma2.2, acescct, logc3, slog3, any space of the OCIO "
            "config, or linear (already in the working space); default: what an EXR header states, else "
            "linear for EXR, srgb for PNG/JPEG"),
    # -- colour (OpenColorIO)
    _f("colour.config", "path", None, optional=True, max_chars=MAX_PATH_CHARS, label="OCIO config",
       flag="--config", knob="ocio_config", metavar="CONFIG",
       help="OCIO config file or ocio:// URI (default: $OCIO, else the built-in ACES studio config)"),
    _f("colour.working_space", "str", None, optional=True, label="Working space", flag="--working-space",
       knob="working_colorspace", metavar="SPACE",
       help="scene-linear space the bokeh is computed in and EXRs are written in (default: the config's "
            "scene_linear role, ACEScg in the built-in config)"),
    _f("colour.output_space", "str", None, optional=True, label="Output colour space", flag="--output-space",
       knob="output_colorspace", metavar="SPACE",
       help="colour space of non-EXR output (PNG, TIFF, DPX; default: the input's own)"),
    _f("colour.display", "str", None, optional=True, label="Display", flag="--display", knob="display",
       metavar="DISPLAY", help="OCIO display of the preview movie (default: the config's default display)"),
    _f("colour.view", "str", None, optional=True, label="View", flag="--view", knob="view", metavar="VIEW",
       help="OCIO view of the preview movie (default: the display's default view, e.g. the ACES 2.0 SDR "
            "tone map)"),
    # -- depth
    _f("depth.kind", "choice", "channel", choices=DEPTH_KINDS, label="Depth source", knob="depth_source",
       help="channel of the input, a separate sequence, or a depth model"),
    _f("depth.channel", "str", None, optional=True, label="Depth channel", flag="--depth-channel",
       knob="z_channel", help="channel holding depth (default: first of Z, depth.Z, depth, ...)"),
    _f("depth.pattern", "path", None, optional=True, max_chars=MAX_PATH_CHARS, label="Depth sequence",
       flag="--depth", knob="depth_file", help="depth from a separate sequence"),
    _f("depth.model", "str", None, optional=True, label="Depth model", flag="--depth-model",
       knob="depth_model", help="estimate depth with this model (registered name)"),
    _f("depth.checkpoint_dir", "path", None, optional=True, max_chars=MAX_PATH_CHARS,
       label="Depth model folder", flag="--depth-checkpoint", knob="depth_checkpoint",
       help="local folder with the depth model's weights (nothing is downloaded)"),
    _f("depth.depth_math", "choice", "depth", choices=DEPTH_MATHS, spellings=DEPTH_MATH_SPELLINGS,
       label="Math", flag="--depth-math", knob="math",
       help="what the depth values mean: depth = distance in metres, far=0 = 1/z (Nuke, also 'far = 0'), "
            "far=-0 = -1/z (Maya), disparity_norm = 0..1 near=1, direct = CoC radius in px"),
    _f("depth.bad_depth", "choice", "error", choices=BAD_DEPTH, label="Bad depth", flag="--bad-depth",
       knob="bad_depth", help="NaN/negative depth: stop with an error, or treat it as infinitely far"),
    _f("depth.stabilise_window", "int", 0, unit="frames", minimum=0, maximum=MAX_WINDOW_FRAMES,
       label="Stabilise depth", flag="--stabilise", knob="stabilise",
       help="steady flickering depth over +-N frames (0 = off)"),
    # -- lens
    _f("lens.mode", "choice", "physical", choices=LENS_MODES, label="Lens", knob="lens_mode",
       help="physical (focal length, f-stop, film back) or artistic (blur size in pixels)"),
    _f("lens.focal_length_mm", "float", 50.0, unit="mm", minimum=0.1, maximum=5000.0, animatable=True,
       label="Focal length", flag="--focal-length", knob="focal_length", help="focal length in mm"),
    _f("lens.fstop", "float", 2.8, minimum=0.5, maximum=1024.0, animatable=True, label="f-stop",
       flag="--fstop", metavar="N", knob="fstop", help="f-number, e.g. 2.8"),
    _f("lens.sensor_width_mm", "float", 36.0, unit="mm", minimum=0.1, maximum=1000.0, animatable=True,
       label="Film back width", flag="--sensor-width", knob="film_back",
       help="sensor / film back width in mm (36 = full frame)"),
    _f("lens.cg_camera", "bool", False, label="CG camera", flag="--cg-camera", knob="cg_camera",
       help="match a CG render's own depth of field (image plane at the focal length, as Cycles)"),
    _f("lens.size_px", "float", None, unit="px", minimum=0.0, maximum=MAX_RADIUS_PX, animatable=True,
       optional=True, label="Size", flag="--size", knob="size",
       help="blur radius in px of things at infinity (ZDefocus size)"),
    _f("lens.k", "float", None, unit="px", minimum=0.0, maximum=1e6, animatable=True, optional=True,
       label="K", flag="--k", knob="k", help="blur radius in px per unit of disparity (Any-to-Bokeh K)"),
    _f("lens.max_size_px", "float", None, unit="px", minimum=0.0, maximum=MAX_RADIUS_PX, optional=True,
       animatable=True, label="Maximum", flag="--max-size", knob="max_size",
       help="cap the blur radius at this many px"),
    # -- focus
    _f("focus.mode", "choice", "distance", choices=FOCUS_MODES, label="Focus", knob="focus_mode",
       help="focus on a distance, a disparity, a picked point (tracked) or a matte"),
    _f("focus.distance_m", "float", 3.0, unit="m", minimum=1e-3, maximum=1e6, animatable=True,
       label="Focus distance", flag="--focus-distance", knob="center", help="focus distance in metres"),
    _f("focus.disparity", "float", None, minimum=-1e6, maximum=1e6, animatable=True, optional=True,
       label="Focus disparity", flag="--focus-disparity", knob="focus_disparity",
       metavar="D", help="focus where the disparity is D: 1/metres with depth math depth (0.5 = 2 m); the "
                         "channel's own value with far=0 (1/z) and disparity_norm (0..1, near = 1; also depth "
                         "models); unused with direct"),
    _f("focus.point_x", "float", None, unit="px", minimum=-1e5, maximum=1e5, animatable=True,
       optional=True, label="Focal point x", knob="focal_point",
       help="focal point, pixels from the left edge of the display window"),
    _f("focus.point_y", "float", None, unit="px", minimum=-1e5, maximum=1e5, animatable=True,
       optional=True, label="Focal point y", knob="focal_point",
       help="focal point, pixels from the top edge (y down), or from the bottom edge (y up) with "
            "focus.origin bottom-left"),
    _f("focus.origin", "choice", "top-left", choices=FOCUS_ORIGINS, label="Focal point origin",
       flag="--focus-origin", knob="focal_point_origin",
       help="where focal point coordinates start: top-left (y down, image arrays) or bottom-left "
            "(y up, Nuke's focal_point)"),
    _f("focus.dof", "float", 0.0, minimum=0.0, maximum=1e6, animatable=True, label="Depth of field",
       flag="--dof", knob="dof", metavar="RANGE",
       help="range around the focal plane that stays fully sharp (ZDefocus dof), in the depth's own units: "
            "metres with depth math depth, the channel's value with far=0 / disparity_norm"),
    _f("focus.track_from_frame", "int", None, minimum=-FRAME_NUMBER_LIMIT, maximum=FRAME_NUMBER_LIMIT,
       optional=True, label="Track from frame", knob="track_from",
       help="pick the focal point on this frame and track it through the shot"),
    _f("focus.point_radius_px", "float", 4.0, unit="px", minimum=0.0, maximum=256.0,
       label="Sample radius", knob="sample_radius", help="radius of the depth sample under the focal point"),
    _f("focus.matte_channel", "str", None, optional=True, label="Focus matte", flag="--focus-matte",
       knob="focus_matte", help="focus on what this matte channel covers (e.g. matte.A)"),
    _f("focus.smoothing_window", "int", 0, unit="frames", minimum=0, maximum=MAX_WINDOW_FRAMES,
       label="Focus smoothing", flag="--focus-smooth", knob="focus_smooth",
       help="steady a point/matte focus over +-N frames (0 = off)"),
    # -- aperture
    _f("aperture.blades", "int", 0, minimum=0, maximum=MAX_BLADES, animatable=True, whole=True,
       label="Blades", flag="--blades", metavar="N", knob="blades",
       help="aperture blades: 0 = round disc, or 3 or more (keyframes hold each count until the next)"),
    _f("aperture.rotation_deg", "float", 0.0, unit="deg", minimum=-3600.0, maximum=3600.0, animatable=True,
       label="Rotation", flag="--rotation", knob="rotation", help="blade rotation in degrees"),
    _f("aperture.roundness", "float", 0.0, minimum=0.0, maximum=1.0, animatable=True, label="Roundness",
       flag="--roundness", knob="roundness", help="0 = straight blades .. 1 = round"),
    _f("aperture.aspect", "float", 1.0, minimum=0.05, maximum=20.0, animatable=True, label="Aspect ratio",
       flag="--aspect", knob="aspect",
       help="width / height of the bokeh as seen after desqueeze (ZDefocus aspect): 1 = round, 0.5 = the "
            "tall oval of a 2x anamorphic lens; the plate's pixel aspect is allowed for"),
    _f("aperture.filter_image", "path", None, optional=True, max_chars=MAX_PATH_CHARS, label="Filter image",
       flag="--filter", knob="filter", metavar="IMAGE",
       help="custom bokeh shape: a greyscale image, bright on black (ZDefocus filter image)"),
    # -- highlights
    _f("highlights.threshold", "float", None, minimum=0.0, maximum=1e4, optional=True,
       label="Bloom threshold", flag="--highlight-threshold", knob="bloom_threshold",
       help="display-referred input: boost highlights above this value into bokeh balls"),
    _f("highlights.gain", "float", 4.0, minimum=0.0, maximum=1000.0, label="Bloom gain",
       flag="--highlight-gain", knob="bloom_gain", help="highlight boost"),
    # -- output
    _f("output.pattern", "path", None, optional=True, max_chars=MAX_PATH_CHARS, label="Output",
       help="output sequence, e.g. out/shot_dof.####.exr (None: results return in-band)"),
    _f("output.compression", "compression", None, optional=True, label="Compression", flag="--compression",
       knob="compression", help="EXR compression: zip, piz, dwaa, dwaa:45 (with a level), htj2k, none, ... "
                                "(default: the input EXR's own, else zip)"),
    _f("output.half", "bool", True, label="Half float", knob="half", help="write 16-bit half float colour"),
    _f("output.resume", "bool", False, label="Resume", flag="--resume", knob="resume",
       help="skip frames already complete in the output"),
    _f("output.overwrite", "bool", False, label="Overwrite", flag="--overwrite", knob="overwrite",
       help="replace existing frames in the output"),
    _f("output.preview", "path", None, optional=True, max_chars=MAX_PATH_CHARS, label="Preview movie",
       flag="--preview", knob="preview",
       help="also write an H.264 preview movie through the OCIO display and view"),
    _f("output.preview_fps", "float", 24.0, unit="fps", minimum=1.0, maximum=1000.0, label="Preview fps",
       flag="--preview-fps", knob="preview_fps", help="preview frame rate"),
    _f("output.setup_view", "bool", False, label="Focal plane setup", flag="--setup-view", knob="output",
       help="write the focal-plane setup view instead (green in focus, red in front, blue behind)"),
    _f("output.channels", "str", None, optional=True, max_chars=MAX_PATH_CHARS, label="Render channels",
       flag="--channels", knob="channels", metavar="CHANNELS",
       help="also render these channels of the input with the same bokeh: comma-separated names or layers "
            "(e.g. diffuse,specular.R); every other channel passes through untouched"),
    _f("output.keep_depth", "bool", True, label="Keep depth", knob="keep_depth",
       help="copy the depth channel into the output EXRs"),
    # -- refine (docs/refine.md); the CLI's --refine [DIR] is hand-made (its DIR is optional)
    _f("refine.model_dir", "path", None, optional=True, max_chars=MAX_PATH_CHARS, label="Refiner model",
       knob="refine_model", help="refine the render with the learned refiner in this folder (None = off)"),
    _f("refine.precision", "choice", "auto", choices=REFINE_PRECISIONS, label="Refiner precision",
       flag="--refine-precision", knob="refine_precision",
       help="number format of the refiner's network: auto (fp16 on CUDA, fp32 on the CPU), fp32, or bf16 "
            "(3.7x faster than fp32 at 1080p on CPUs with native bfloat16, e.g. Intel AMX; refined "
            "frames within 0.01 dB of fp32's against Cycles)"),
    # -- render
    _f("device", "str", "cpu", label="Device", flag="--device", knob="device", max_chars=32,
       help="torch device, e.g. cpu, cuda, cuda:1"),
    _f("plane_spacing_px", "float", 1.0, unit="px", minimum=0.25, maximum=16.0, label="Layer spacing",
       flag="--plane-spacing", knob="plane_spacing", help="CoC step between layers; larger is faster, coarser"),
)

_BY_PATH = {f.path: f for f in FIELDS}


def field_info(path: str) -> Field:
    """The registry entry of a job path (``"lens.fstop"``); KeyError names the valid ones."""
    try:
        return _BY_PATH[path]
    except KeyError:
        raise KeyError(f"no job field {path!r}; fields: {', '.join(_BY_PATH)}") from None


def fields_of(section: str) -> tuple[Field, ...]:
    """Entries of one job section (``"lens"``), or the top-level ones for ``""``."""
    return tuple(f for f in FIELDS if f.section == section)


def describe(path: Optional[str], front_end: str = "job") -> str:
    """How a front end names a job field: ``cli`` -> ``--fstop``, ``nuke`` -> ``fstop``
    knob, ``dialog`` -> ``f-stop``, ``job`` -> ``lens.fstop``.  Unknown paths (a list item
    such as ``frames[3]``) come back as given."""
    if front_end not in FRONT_ENDS:
        raise ValueError(f"front_end must be one of {FRONT_ENDS}, got {front_end!r}")
    entry = _BY_PATH.get(path or "")
    if entry is None or front_end == "job":
        return path or ""
    if front_end == "cli":
        return entry.flag or f"job field {entry.path}"
    if front_end == "nuke":
        return f"{entry.knob} knob" if entry.knob else f"job field {entry.path}"
    return entry.label or entry.path


def translate(message: str, path: Optional[str], front_end: str) -> str:
    """``message`` in ``front_end``'s words: the job field ``path`` (quoted or bare) and every
    other quoted job field (``'output.resume'``) named as that front end names it
    (``"'lens.fstop' must be ..."`` -> ``"--fstop must be ..."`` for the CLI)."""
    if front_end == "job":
        return message
    if path:
        said = describe(path, front_end)
        message = message.replace(f"job field '{path}'", said)
        if "." in path:  # a bare one-word name ("device") is too often an ordinary word
            message = re.sub(rf"(?<![\w.']){re.escape(path)}(?![\w'])", said, message)
    return re.sub(r"'([a-z_]+(?:\.[a-z_]+)?)'",
                  lambda m: describe(m.group(1), front_end) if m.group(1) in _BY_PATH else m.group(0), message)


def shorten(value: Any, limit: int = 60, quote: bool = True) -> str:
    """``repr(value)`` (or ``str`` with ``quote=False``) cut to ``limit`` characters: errors
    never echo a hostile value whole."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
