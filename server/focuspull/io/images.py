"""Read and write single images with OpenImageIO; every write is atomic.

Pixels at this boundary are ``H x W x C`` float32.  Colour channels (R, G, B, Y) of
display formats are decoded to scene-linear on read and encoded on write with a
*named* transfer function (:mod:`focuspull.io.transfer`); alpha, depth and other
data channels are never touched.  Alpha is premultiplied (associated) in memory,
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
from focuspull.io.atomic import atomic_output
from focuspull.spec.compression import EXR_COMPRESSIONS, check_compression
from focuspull.io.channels import find_depth_channel, is_colour_channel, is_depth_like
from focuspull.io.metadata import apply_metadata, metadata_from_spec
from focuspull.io.transfer import LINEAR_EXTENSIONS, check_transfer, default_transfer_for, from_linear, to_linear

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


def read_image(path: str, channels=None, transfer: str | None = None) -> Image:
    """Read an image file into an :class:`Image`.

    Args:
        path: any format OpenImageIO reads (EXR half/float, PNG, TIFF, JPEG, DPX...).
        channels: names to keep, in this order (default: all).
        transfer: curve of the colour channels; default from
            :func:`~focuspull.io.transfer.default_transfer_for` (EXR linear, PNG sRGB).
            Pass ``"linear"`` for data stored in display formats (depth PNGs).

    Only the first subimage (part) of multi-part EXR files is read.  EXR files
    keep channels by name, not order (OpenEXR sorts them; OIIO lists R,G,B,A first):
    look channels up by name (``Image.channel``) or pass ``channels``.
    """
    path = os.fspath(path)
    inp = _open(path, straight_alpha=True)
    try:
        spec = inp.spec()
        if spec.deep:
            raise SequenceError(f"{path} holds deep data", "flatten it first (e.g. DeepToImage in Nuke)")
        names = list(spec.channelnames)
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None or inp.has_error:
            raise SequenceError(f"cannot read the pixels of {path}: {inp.geterror() or oiio.geterror()}",
                                "the file is truncated or corrupt; re-render or re-copy it")
        straight = spec.get_int_attribute("oiio:UnassociatedAlpha", 0) == 1
        metadata = metadata_from_spec(spec)
    finally:
        inp.close()
    pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
    name = check_transfer(transfer) if transfer is not None else default_transfer_for(path, metadata["format"])
    pixels = _decode(pixels, names, name, straight)
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


def _decode(pixels: np.ndarray, names: list[str], transfer: str, straight_alpha: bool) -> np.ndarray:
    """Encoded file values -> linear, premultiplied."""
    colour = [i for i, n in enumerate(names) if is_colour_channel(n)]
    alpha = names.index("A") if "A" in names else None
    if transfer == "linear" and not (straight_alpha and alpha is not None):
        return pixels
    out = pixels.copy()
    if alpha is not None and not straight_alpha and transfer != "linear":
        # Premultiplied *encoded* values: undo the premultiplication before decoding.
        a = out[:, :, alpha:alpha + 1]
        out[:, :, colour] = np.where(a > 0, out[:, :, colour] / np.where(a > 0, a, 1), 0)
    out[:, :, colour] = to_linear(out[:, :, colour], transfer)
    if alpha is not None:
        out[:, :, colour] *= out[:, :, alpha:alpha + 1]
    return out


def _encode(pixels: np.ndarray, names: list[str], transfer: str, integer: bool) -> np.ndarray:
    """Linear premultiplied -> straight encoded values for a display file."""
    colour = [i for i, n in enumerate(names) if is_colour_channel(n)]
    alpha = names.index("A") if "A" in names else None
    out = pixels.astype(np.float32, copy=True)
    if alpha is not None:
        a = out[:, :, alpha:alpha + 1]
        out[:, :, colour] = np.where(a > 0, out[:, :, colour] / np.where(a > 0, a, 1), 0)
    out[:, :, colour] = from_linear(out[:, :, colour], transfer)
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


def write_image(path: str, pixels, channel_names=None, metadata: dict | None = None, compression: str = "zip",
                half: bool = True, transfer: str | None = None, bits: int | None = None) -> str:
    """Write ``pixels`` (``H x W x C`` or ``H x W`` float, linear) to ``path`` atomically.

    Args:
        channel_names: default R,G,B(,A) for 3/4 channels, Y for one; required otherwise.
        metadata: windows, pixel aspect, time code, frame rate (see
            :mod:`focuspull.io.metadata`), e.g. ``read_image(src).metadata``.
        compression: EXR/TIFF compression (``zip``, ``piz``, ``dwaa``, ``none``...).
        half: EXR colour in half float; depth-like channels (``Z``, ``depth.*``) stay
            32-bit float, as half would quantise far depth to metres.
        transfer: curve for colour channels; default linear for EXR/HDR, sRGB for
            display formats.  Integer formats are clipped to 0..1 after encoding.
        bits: 8 or 16 (PNG/TIFF), 10/12/16 (DPX), 32 = float TIFF; default per format.

    Returns the path written.  Nothing appears at ``path`` unless the write succeeded.
    """
    path = os.fspath(path)
    arr = np.asarray(pixels)
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
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"cannot write {path}: the directory {directory} does not exist",
                         "create the output directory first, or pass another output path")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: the directory {directory} is not writable",
                         _DIRECTORY_HINT)
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
        if name != "linear":
            arr = arr.copy()
            colour = [i for i, n in enumerate(names) if is_colour_channel(n)]
            arr[:, :, colour] = from_linear(arr[:, :, colour], name)
        if is_exr:
            colour_format = oiio.TypeHalf if half else oiio.TypeFloat
            formats = tuple(oiio.TypeFloat if is_depth_like(n) else colour_format for n in names)
            spec = oiio.ImageSpec(width, height, nchannels, colour_format)
            spec.channelformats = formats
        else:
            spec = oiio.ImageSpec(width, height, nchannels, "float")
    else:
        if bits not in (8, 10, 12, 16):
            raise InputError(f"cannot write {bits}-bit integer {ext} files", "use bits=8 or bits=16")
        arr = _encode(arr, names, name, integer=True)
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
    if is_exr or ext in (".tif", ".tiff"):
        spec.attribute("compression", check_compression(compression) if is_exr else str(compression))
    apply_metadata(spec, metadata, path=path)

    with atomic_output(path) as tmp:
        out = oiio.ImageOutput.create(tmp)
        if out is None:
            raise InputError(f"cannot write {path}: {oiio.geterror()}",
                             "use a format OpenImageIO writes (.exr, .png, .tif, .jpg, .dpx)")
        try:
            if not out.open(tmp, spec):
                message = f"cannot write {path}: {out.geterror()}"
                if not _can_create_in(directory):
                    raise InputError(message, _DIRECTORY_HINT)
                raise InputError(message, f"check the channels ({','.join(names)}) and bit depth suit {ext} files")
            if not out.write_image(np.ascontiguousarray(arr)):
                raise SequenceError(f"writing {path} failed: {out.geterror()}",
                                    "check free disk space and permissions of the output directory")
        finally:
            out.close()
    return path


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


__all__ = ["Image", "read_image", "read_header", "write_image", "is_complete_frame", "find_depth_channel",
           "EXR_COMPRESSIONS", "DEFAULT_BITS"]
