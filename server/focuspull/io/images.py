"""Read and write single images with OpenImageIO; every write is atomic.

Pixels at this boundary are ``H x W x C`` float32.  Colour channels (R, G, B, Y, per
layer) of display-referred and log files are converted to the scene-linear working
space on read and encoded on write through OpenColorIO, from and to a *named* colour
space (:mod:`focuspull.io.colour`); alpha, depth and other data channels are never
touched.  Alpha is premultiplied (associated) in memory,
as in EXR and Nuke; straight-alpha files (PNG) are converted in linear light.

The pixels are the file's data window (what is stored); ``metadata`` keeps both
windows so a write with the same metadata puts the pixels back where they were.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np
import OpenImageIO as oiio

from focuspull.errors import InputError, SequenceError
from focuspull.io import exr_scanlines
from focuspull.io.atomic import atomic_output
from focuspull.spec.compression import EXR_COMPRESSIONS, check_compression
from focuspull.io.channels import find_depth_channel, is_colour_channel, is_depth_like
from focuspull.io.colour import Colour, colour_setup
from focuspull.io.metadata import apply_metadata, metadata_from_spec
from focuspull.io.transfer import LINEAR_EXTENSIONS, check_transfer, default_transfer_for, is_linear_name

# Bits per sample of integer outputs when the caller gives none; JPEG and PNG are
# the usual 8-bit review formats, TIFF 16-bit for hand-offs, DPX 10-bit for film.
DEFAULT_BITS = {".png": 8, ".jpg": 8, ".jpeg": 8, ".tif": 16, ".tiff": 16, ".dpx": 10}
_DEFAULT_NAMES = {1: ["Y"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}


@dataclass
class Image:
    """One image as read from disk.

    Attributes:
        pixels: ``H x W x C`` float32, colour scene-linear, alpha premultiplied.
        channel_names: ``C`` names (``R``, ``G``, ``B``, ``A``, ``Z``, ``depth.Z``...).
        metadata: see :mod:`focuspull.io.metadata`.
        path: the file it came from ("" for images made in memory).
        transfer: the curve that was decoded on read (``linear`` for EXR).
    """

    pixels: np.ndarray
    channel_names: list[str]
    metadata: dict = field(default_factory=dict)
    path: str = ""
    transfer: str = "linear"

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def channel(self, name: str) -> np.ndarray:
        """The ``H x W`` plane of one channel."""
        if name not in self.channel_names:
            raise SequenceError(
                f"channel {name!r} not found in {os.path.basename(self.path) or 'the image'}; "
                f"channels are {','.join(self.channel_names)}",
                "pick one of those channels (e.g. --depth-channel)")
        return self.pixels[:, :, self.channel_names.index(name)]

    def depth_channel(self, requested: str | None = None) -> np.ndarray:
        """The ``H x W`` depth plane, found with :func:`find_depth_channel`."""
        return self.channel(find_depth_channel(self.channel_names, requested, path=self.path))

    def rgba(self) -> np.ndarray:
        """``H x W x 4`` (R, G, B, A) or ``H x W x 3`` when there is no alpha.

        A grey image (one ``Y`` channel, plus optional ``A``) is spread to R, G, B.
        """
        names = self.channel_names
        if all(c in names for c in "RGB"):
            colour = [names.index(c) for c in "RGB"]
        elif "Y" in names:
            colour = [names.index("Y")] * 3
        else:
            raise SequenceError(
                f"{os.path.basename(self.path) or 'the image'} has no R,G,B or Y channels; "
                f"channels are {','.join(names)}",
                "give an image with colour channels (R,G,B) as the plate")
        if "A" in names:
            colour.append(names.index("A"))
        return np.ascontiguousarray(self.pixels[:, :, colour])


def _open(path: str, *, straight_alpha: bool):
    if not os.path.isfile(path):
        raise SequenceError(f"image {path} does not exist",
                            "check the path and frame range (list the directory to see what is there)")
    config = oiio.ImageSpec()
    if straight_alpha:
        # Ask for stored values as they are; we associate alpha ourselves, in linear light.
        config.attribute("oiio:UnassociatedAlpha", 1)
    inp = oiio.ImageInput.open(path, config)
    if inp is None:
        raise SequenceError(f"cannot open {path}: {oiio.geterror()}",
                            "check that the file is a complete image in a format OpenImageIO reads; "
                            "re-render or re-copy it")
    return inp


def read_header(path: str):
    """The OIIO ``ImageSpec`` of ``path`` without reading pixels (fast)."""
    inp = _open(os.fspath(path), straight_alpha=False)
    try:
        return inp.spec()
    finally:
        inp.close()


def read_image(path: str, channels=None, transfer: str | None = None, colour: Colour | None = None,
               subimage: int = 0) -> Image:
    """Read an image file into an :class:`Image`.

    Args:
        path: any format OpenImageIO reads (EXR half/float, PNG, TIFF, JPEG, DPX...).
        channels: names to keep, in this order (default: all).
        transfer: colour space of the colour channels (``srgb``, ``ACEScct``, ``logc3``,
            any name of the OCIO config, ``linear`` = already in the working space);
            default from :func:`~focuspull.io.transfer.default_transfer_for` (EXR linear,
            PNG sRGB).  Pass ``"linear"`` for data stored in display formats (depth PNGs).
        colour: the OCIO setup (config, working space); default :func:`colour_setup`.
        subimage: the part of a multi-part EXR (0 = the first); :func:`read_parts` reads all.

    EXR files keep channels by name, not order (OpenEXR sorts them; OIIO lists R,G,B,A
    first): look channels up by name (``Image.channel``) or pass ``channels``.
    """
    path = os.fspath(path)
    inp = _open(path, straight_alpha=True)
    try:
        if subimage and not inp.seek_subimage(int(subimage), 0):
            raise SequenceError(f"{path} has no part {subimage}", "read part 0, or list the parts with oiiotool --info")
        return _read_current(inp, path, channels, transfer, colour)
    finally:
        inp.close()


def read_parts(path: str, transfer: str | None = None, colour: Colour | None = None) -> list[Image]:
    """Every part (subimage) of ``path``, in file order, each with its own channels and
    metadata (``metadata["attributes"]`` holds the part ``name``)."""
    path = os.fspath(path)
    inp = _open(path, straight_alpha=True)
    parts = []
    try:
        index = 0
        while inp.seek_subimage(index, 0):
            parts.append(_read_current(inp, path, None, transfer if index == 0 else "linear", colour))
            index += 1
    finally:
        inp.close()
    return parts


def _read_current(inp, path: str, channels, transfer, colour) -> Image:
    spec = inp.spec()
    if spec.deep:
        raise SequenceError(f"{path} holds deep data", "flatten it first (e.g. DeepToImage in Nuke)")
    names = list(spec.channelnames)
    pixels = inp.read_image(inp.current_subimage(), 0, 0, spec.nchannels, "float")
    if pixels is None or inp.has_error:
        raise SequenceError(f"cannot read the pixels of {path}: {inp.geterror() or oiio.geterror()}",
                            "the file is truncated or corrupt; re-render or re-copy it")
    straight = spec.get_int_attribute("oiio:UnassociatedAlpha", 0) == 1
    metadata = metadata_from_spec(spec)
    pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
    name = check_transfer(transfer) if transfer is not None else default_transfer_for(path, metadata["format"])
    pixels = _decode(pixels, names, name, straight, colour)
    if channels is not None:
        channels = [channels] if isinstance(channels, str) else list(channels)
        missing = [c for c in channels if c not in names]
        if missing:
            raise SequenceError(
                f"channel{'s' if len(missing) > 1 else ''} {','.join(missing)} not found in "
                f"{os.path.basename(path)}; channels are {','.join(names)}",
                "ask for channels that are there (e.g. --depth-channel NAME)")
        pixels = pixels[:, :, [names.index(c) for c in channels]]
        names = channels
    return Image(np.ascontiguousarray(pixels), names, metadata, path, name)


def colour_groups(names: list[str]) -> list[list[int]]:
    """Indices of the colour channels, grouped for conversion: ``[r, g, b]`` of each layer
    (``R,G,B``, ``diffuse.R,...``) and ``[y]`` for grey or a lone colour channel."""
    layers: dict[str, dict[str, int]] = {}
    for i, n in enumerate(names):
        if is_colour_channel(n):
            layer, _, base = n.rpartition(".")
            layers.setdefault(layer, {})[base.upper()[:1]] = i
    groups = []
    for members in layers.values():
        if all(c in members for c in "RGB"):
            groups.append([members["R"], members["G"], members["B"]])
            members = {k: v for k, v in members.items() if k not in "RGB"}
        groups += [[i] for i in members.values()]
    return groups


def _convert(out: np.ndarray, names: list[str], convert) -> None:
    for group in colour_groups(names):
        out[:, :, group] = convert(out[:, :, group])


def _decode(pixels: np.ndarray, names: list[str], transfer: str, straight_alpha: bool,
            setup: Colour | None = None) -> np.ndarray:
    """Encoded file values -> linear working space, premultiplied."""
    colour = [i for i, n in enumerate(names) if is_colour_channel(n)]
    alpha = names.index("A") if "A" in names else None
    linear = is_linear_name(transfer)
    if linear and not (straight_alpha and alpha is not None):
        return pixels
    out = pixels.copy()
    if alpha is not None and not straight_alpha and not linear:
        # Premultiplied *encoded* values: undo the premultiplication before decoding.
        a = out[:, :, alpha:alpha + 1]
        out[:, :, colour] = np.where(a > 0, out[:, :, colour] / np.where(a > 0, a, 1), 0)
    if not linear:
        setup = setup or colour_setup()
        _convert(out, names, lambda rgb: setup.to_working(rgb, transfer))
    if alpha is not None:
        out[:, :, colour] *= out[:, :, alpha:alpha + 1]
    return out


def _encode(pixels: np.ndarray, names: list[str], transfer: str, integer: bool,
            setup: Colour | None = None) -> np.ndarray:
    """Linear premultiplied -> straight encoded values for a display file."""
    colour = [i for i, n in enumerate(names) if is_colour_channel(n)]
    alpha = names.index("A") if "A" in names else None
    out = pixels.astype(np.float32, copy=True)
    if alpha is not None:
        a = out[:, :, alpha:alpha + 1]
        out[:, :, colour] = np.where(a > 0, out[:, :, colour] / np.where(a > 0, a, 1), 0)
    if not is_linear_name(transfer):
        setup = setup or colour_setup()
        _convert(out, names, lambda rgb: setup.from_working(rgb, transfer))
    if integer:
        np.clip(out, 0.0, 1.0, out=out)
    return out


_DIRECTORY_HINT = "check that the output directory exists, is writable and has free space"


def _can_create_in(directory: str) -> bool:
    """Whether a file can really be created in ``directory`` (read-only mounts, quotas)."""
    probe = os.path.join(directory, f".focuspull-probe-{os.getpid()}-{id(directory)}")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        return False
    with contextlib.suppress(OSError):
        os.remove(probe)
    return True


@dataclass
class Part:
    """One part of a multi-part EXR to write (see :func:`write_parts`).

    ``formats``: per-channel pixel format by name (``half``, ``float``, ``uint``) that
    overrides the defaults, e.g. the input's own formats for channels passed through.
    """

    pixels: np.ndarray
    channel_names: list
    metadata: dict = field(default_factory=dict)
    formats: dict = field(default_factory=dict)


def write_image(path: str, pixels, channel_names=None, metadata: dict | None = None, compression: str = "zip",
                half: bool = True, transfer: str | None = None, bits: int | None = None,
                colour: Colour | None = None, formats: dict | None = None) -> str:
    """Write ``pixels`` (``H x W x C`` or ``H x W`` float, linear) to ``path`` atomically.

    Args:
        channel_names: default R,G,B(,A) for 3/4 channels, Y for one; required otherwise.
        metadata: windows, pixel aspect, time code, frame rate and every other header
            attribute (see :mod:`focuspull.io.metadata`), e.g. ``read_image(src).metadata``.
        compression: EXR/TIFF compression (``zip``, ``piz``, ``dwaa``, ``none``...).
        half: EXR colour in half float; depth-like channels (``Z``, ``depth.*``) stay
            32-bit float, as half would quantise far depth to metres.
        transfer: colour space of the written colour (see :func:`read_image`); default
            linear (the working space) for EXR/HDR, sRGB for display formats.  Integer
            formats are clipped to 0..1 after encoding.
        bits: 8 or 16 (PNG/TIFF), 10/12/16 (DPX), 32 = float TIFF; default per format.
        colour: the OCIO setup; given, a linear EXR is tagged with the working space
            (``chromaticities``, ``colorInteropID``), replacing what the metadata said.
        formats: per-channel pixel format by name, overriding ``half`` (EXR).

    Returns the path written.  Nothing appears at ``path`` unless the write succeeded.
    """
    return write_parts(path, [Part(pixels, channel_names, metadata or {}, formats or {})],
                       compression=compression, half=half, transfer=transfer, bits=bits, colour=colour)


def write_parts(path: str, parts, compression: str = "zip", half: bool = True, transfer: str | None = None,
                bits: int | None = None, colour: Colour | None = None) -> str:
    """Write one image, or several parts of a multi-part EXR, to ``path`` atomically.

    ``parts`` is a list of :class:`Part`; the colour ``transfer`` applies to the first
    part (the rendered picture), the others are data written as they are.  Every part
    gets ``compression``; its metadata (attributes, part ``name``) is kept.
    """
    path = os.fspath(path)
    parts = list(parts)
    if not parts:
        raise InputError(f"nothing to write to {path}", "pass at least one part")
    ext = os.path.splitext(path)[1].lower()
    is_exr = ext in (".exr", ".sxr", ".mxr")
    if len(parts) > 1 and not is_exr:
        raise InputError(f"{ext} files hold one image, got {len(parts)} parts", "write multi-part images as .exr")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"cannot write {path}: the directory {directory} does not exist",
                         "create the output directory first, or pass another output path")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: the directory {directory} is not writable",
                         _DIRECTORY_HINT)
    prepared = [_prepare(path, part, compression, half, transfer if i == 0 else "linear", bits,
                         colour if i == 0 else None, index=i)
                for i, part in enumerate(parts)]
    if len(prepared) > 1:
        names = [p[1].get_string_attribute("name", "") for p in prepared]
        for i, spec_name in enumerate(names):
            if not spec_name or names.index(spec_name) != i:  # EXR needs unique part names
                prepared[i][1].attribute("name", f"part{i}" if i else "rgba")
    with atomic_output(path) as tmp:
        if (len(prepared) == 1 and is_exr and exr_scanlines.supports(prepared[0][1])
                and exr_scanlines.write(tmp, prepared[0][0], prepared[0][1])):
            # The common case (scanlines, half colour + float depth) without OpenImageIO's
            # value-by-value conversion: the file OpenImageIO writes (its header, same values).
            return path
        out = oiio.ImageOutput.create(tmp)
        if out is None:
            raise InputError(f"cannot write {path}: {oiio.geterror()}",
                             "use a format OpenImageIO writes (.exr, .png, .tif, .jpg, .dpx)")
        try:
            specs = [spec for _, spec, _ in prepared]
            ok = out.open(tmp, specs) if len(specs) > 1 else out.open(tmp, specs[0])
            if not ok:
                message = f"cannot write {path}: {out.geterror()}"
                if not _can_create_in(directory):
                    raise InputError(message, _DIRECTORY_HINT)
                raise InputError(message, f"check the channels ({','.join(prepared[0][2])}) and bit depth "
                                          f"suit {ext} files")
            for i, (arr, spec, _names) in enumerate(prepared):
                if i and not out.open(tmp, spec, "AppendSubimage"):
                    raise SequenceError(f"writing part {i} of {path} failed: {out.geterror()}",
                                        "check free disk space and the part's channels")
                if not out.write_image(np.ascontiguousarray(arr)):
                    raise SequenceError(f"writing {path} failed: {out.geterror()}",
                                        "check free disk space and permissions of the output directory")
        finally:
            out.close()
    return path


def _prepare(path: str, part: Part, compression, half, transfer, bits, colour, *, index: int):
    """``(pixels, ImageSpec, names)`` of one part, checked."""
    arr = np.asarray(part.pixels)
    channel_names = part.channel_names
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise InputError(f"pixels must be H x W x C, got shape {arr.shape}", "pass an H x W x C float32 array")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"pixels must be float (scene-linear), got {arr.dtype}",
                         "convert integers to float first (e.g. arr / 255 and to_linear)")
    height, width, nchannels = arr.shape
    names = list(channel_names) if channel_names is not None else _DEFAULT_NAMES.get(nchannels)
    if names is None or len(names) != nchannels or len(set(names)) != nchannels:
        raise InputError(f"{nchannels} channels need {nchannels} distinct channel names, got {channel_names}",
                         "pass channel_names, e.g. ['R','G','B','A','Z']")
    ext = os.path.splitext(path)[1].lower()
    is_exr = ext in (".exr", ".sxr", ".mxr")
    if bits is None:
        bits = DEFAULT_BITS.get(ext, 8)
    if bits == 32 and ext not in (".tif", ".tiff") and ext not in LINEAR_EXTENSIONS:
        raise InputError(f"{ext} files cannot hold 32-bit float pixels", "write .exr or .tif for float data")
    if ext in (".jpg", ".jpeg", ".jpe", ".jfif") and nchannels not in (1, 3):
        raise InputError(f"JPEG holds 1 or 3 channels, got {nchannels} ({','.join(names)})",
                         "write only R,G,B to JPEG, or use .png/.exr to keep alpha")
    float_file = ext in LINEAR_EXTENSIONS or bits == 32
    name = check_transfer(transfer) if transfer is not None else default_transfer_for(path, "float" if float_file else None)

    arr = arr.astype(np.float32, copy=False)
    if float_file:
        if not is_linear_name(name):
            arr = arr.copy()
            setup = colour or colour_setup()
            _convert(arr, names, lambda rgb: setup.from_working(rgb, name))
        if is_exr:
            colour_format = oiio.TypeHalf if half else oiio.TypeFloat
            chosen = tuple(oiio.TypeDesc(str(part.formats[n])) if n in part.formats
                           else oiio.TypeFloat if is_depth_like(n) else colour_format for n in names)
            spec = oiio.ImageSpec(width, height, nchannels, colour_format)
            spec.channelformats = chosen
        else:
            spec = oiio.ImageSpec(width, height, nchannels, "float")
    else:
        if bits not in (8, 10, 12, 16):
            raise InputError(f"cannot write {bits}-bit integer {ext} files", "use bits=8 or bits=16")
        arr = _encode(arr, names, name, integer=True, setup=colour)
        spec = oiio.ImageSpec(width, height, nchannels, "uint8" if bits == 8 else "uint16")
        if bits in (10, 12):
            spec.attribute("oiio:BitsPerSample", bits)
        if "A" in names:
            spec.attribute("oiio:UnassociatedAlpha", 1)  # we already un-premultiplied
    spec.channelnames = tuple(names)
    if "A" in names:
        spec.alpha_channel = names.index("A")
    depth_name = next((n for n in names if is_depth_like(n)), None)
    if depth_name is not None:
        spec.z_channel = names.index(depth_name)
    apply_metadata(spec, part.metadata, path=path)
    if is_exr or ext in (".tif", ".tiff"):
        spec.attribute("compression", check_compression(compression) if is_exr else str(compression))
    if is_exr:
        if colour is not None and is_linear_name(name):
            # What was rendered: the working space, whatever the input's header said.
            chromaticities = colour.chromaticities()
            if chromaticities is not None:
                spec.attribute("chromaticities", oiio.TypeDesc("float[8]"), chromaticities)
            spec.attribute("oiio:ColorSpace", colour.interop_id())
        elif index == 0 and not is_linear_name(name):
            spec.erase_attribute("chromaticities")
    return arr, spec, names


def is_complete_frame(path: str, expect_shape=None, expect_channels=None, expect_attributes=None) -> bool:
    """True when ``path`` is a whole, readable frame of the expected size and channels.

    The rule ``--resume`` uses to skip a frame: the file opens, its data window is
    ``expect_shape`` (``(H, W)`` or ``(H, W, C)``), it has exactly the channels
    ``expect_channels`` (any order), its header has the string attributes
    ``expect_attributes`` (e.g. the render's fingerprint), and every pixel decodes
    without error.  A truncated or corrupt file is not complete.  Never raises for a
    bad file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return False
    inp = oiio.ImageInput.open(path)
    if inp is None:
        oiio.geterror()  # clear the message so it does not leak into a later error
        return False
    try:
        spec = inp.spec()
        if expect_shape is not None:
            shape = tuple(int(v) for v in expect_shape)
            if shape[:2] != (spec.height, spec.width):
                return False
            if len(shape) > 2 and shape[2] != spec.nchannels:
                return False
        # By name, not order: EXR files store channels sorted by name.
        if expect_channels is not None and sorted(spec.channelnames) != sorted(expect_channels):
            return False
        for name, value in (expect_attributes or {}).items():
            if spec.get_string_attribute(name, "") != value:
                return False
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None or inp.has_error:
            inp.geterror()
            return False
        return True
    finally:
        inp.close()


__all__ = ["Image", "Part", "read_image", "read_parts", "read_header", "write_image", "write_parts", "colour_groups", "is_complete_frame", "find_depth_channel",
           "EXR_COMPRESSIONS", "DEFAULT_BITS"]
