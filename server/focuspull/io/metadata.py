"""Image metadata kept through a render: OIIO ImageSpec <-> a plain, msgpack-safe dict.

Keys of the dict (all optional on write):

=====================  ==============================================================
``format``             pixel format of the file as read: ``half``, ``float``, ``uint8``...
``channel_formats``    per-channel formats (EXR may mix half RGB with float Z)
``bits_per_sample``    e.g. 10 for a 10-bit DPX
``compression``        e.g. ``zip``, ``piz``, ``dwaa:45`` (write uses its own argument)
``pixelAspectRatio``   float (OIIO ``PixelAspectRatio``), 2.0 for anamorphic
``smpte:TimeCode``     ``[packed_bcd, user_bits]`` exactly as stored (lossless)
``timecode``           ``"HH:MM:SS:FF"`` (``;`` before FF for drop frame), read only
                       on write unless ``smpte:TimeCode`` is absent
``framesPerSecond``    ``[numerator, denominator]`` (``[24000, 1001]``); a float is
                       accepted on write
``x``, ``y``,          data window: origin and size of the stored pixels
``width``, ``height``
``full_x``, ``full_y``, display window (the "format" in Nuke)
``full_width``, ``full_height``
``subimages``          number of parts (multi-part EXR), read only
``attributes``         every other header attribute, ``[[name, type, value], ...]``
                       (``type`` as OIIO spells it: ``string``, ``matrix``,
                       ``float[8]``...): Copyright, ImageDescription, ``nuke/*``,
                       ``worldToCamera``, ``chromaticities``, ``colorInteropID``,
                       the part ``name``...; written back unless the render changes
                       what they say (see :data:`REWRITTEN`)
=====================  ==============================================================
"""
from __future__ import annotations

from fractions import Fraction

import OpenImageIO as oiio

from focuspull.errors import InputError

WINDOW_KEYS = ("x", "y", "width", "height", "full_x", "full_y", "full_width", "full_height")
#: Header attribute holding the fingerprint of the render that wrote a frame (see
#: ``RenderJob.fingerprint``); ``--resume`` trusts only frames of the same render.
FINGERPRINT_KEY = "focuspull:job"
#: Attributes kept by their own keys above, or that describe how this very file is stored
#: (they are recomputed on write), or OIIO's bookkeeping: not in ``attributes``.
_OWN_KEYS = frozenset({"compression", "PixelAspectRatio", "smpte:TimeCode", "FramesPerSecond",
                       FINGERPRINT_KEY, "oiio:BitsPerSample", "oiio:UnassociatedAlpha", "oiio:RowsPerChunk",
                       "oiio:subimages", "oiio:subimagename", "oiio:ColorSpace", "openexr:chunkCount",
                       "DateTime", "tiles", "openexr:levelmode", "openexr:roundingmode"})
#: Attributes a render makes false and rewrites: the colour space is the working space
#: of the render (written from the OCIO config), the time stamp is the render's.
REWRITTEN = frozenset({"chromaticities", "colorInteropID"})


def timecode_to_string(packed: int) -> str:
    """SMPTE 12M packed BCD time code (as in EXR ``timeCode``) -> ``'HH:MM:SS:FF'``."""
    def bcd(shift: int, tens_bits: int) -> int:
        return ((packed >> (shift + 4)) & ((1 << tens_bits) - 1)) * 10 + ((packed >> shift) & 0xF)

    drop = (packed >> 6) & 1
    hours, minutes, seconds, frames = bcd(24, 2), bcd(16, 3), bcd(8, 3), bcd(0, 2)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{';' if drop else ':'}{frames:02d}"


def timecode_from_string(text: str) -> int:
    """``'HH:MM:SS:FF'`` (``;`` or ``.`` before FF for drop frame) -> packed BCD."""
    parts = text.replace(";", ":").replace(".", ":").split(":")
    try:
        hours, minutes, seconds, frames = (int(p) for p in parts)
        if len(parts) != 4 or not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= seconds < 60
                                   and 0 <= frames < 40):
            raise ValueError
    except ValueError:
        raise InputError(f"cannot read time code {text!r}", "write it as HH:MM:SS:FF, e.g. 01:00:00:00") from None

    def bcd(value: int, shift: int) -> int:
        return ((value // 10) << (shift + 4)) | ((value % 10) << shift)

    drop = 1 << 6 if (";" in text or "." in text) else 0
    return bcd(hours, 24) | bcd(minutes, 16) | bcd(seconds, 8) | bcd(frames, 0) | drop


def fps_rational(fps) -> tuple[int, int]:
    """A frame rate as ``(numerator, denominator)``; NTSC rates snap to ``n*1000/1001``.

    ``23.976 -> (24000, 1001)``, ``25 -> (25, 1)``, ``[30000, 1001]`` is kept.
    """
    if isinstance(fps, (list, tuple)):
        num, den = int(fps[0]), int(fps[1])
    else:
        value = float(fps)
        ntsc = round(value * 1.001)
        if abs(value - ntsc / 1.001) < 1e-3 and abs(value - round(value)) > 1e-3:
            num, den = ntsc * 1000, 1001
        else:
            fraction = Fraction(value).limit_denominator(1001)
            num, den = fraction.numerator, fraction.denominator
    if num <= 0 or den <= 0:
        raise InputError(f"frame rate must be positive, got {fps!r}", "pass e.g. 24, 25 or 23.976")
    return num, den


def metadata_from_spec(spec) -> dict:
    """The metadata worth keeping from an OIIO ``ImageSpec`` (see module docstring)."""
    meta: dict = {
        "format": str(spec.format),
        "channel_formats": [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels,
    }
    for key in WINDOW_KEYS:
        meta[key] = int(getattr(spec, key))
    bits = spec.get_int_attribute("oiio:BitsPerSample", 0)
    if bits:
        meta["bits_per_sample"] = bits
    compression = spec.get_string_attribute("compression", "")
    if compression:
        meta["compression"] = compression
    meta["pixelAspectRatio"] = float(spec.get_float_attribute("PixelAspectRatio", 1.0))
    timecode = spec.getattribute("smpte:TimeCode")
    if timecode is not None:
        meta["smpte:TimeCode"] = [int(v) for v in timecode]
        meta["timecode"] = timecode_to_string(int(timecode[0]))
    fps = spec.getattribute("FramesPerSecond")
    if fps is not None:
        meta["framesPerSecond"] = list(fps_rational(fps))
    fingerprint = spec.get_string_attribute(FINGERPRINT_KEY, "")
    if fingerprint:
        meta[FINGERPRINT_KEY] = fingerprint
    meta["subimages"] = max(1, spec.get_int_attribute("oiio:subimages", 1))
    attributes = []
    for attrib in spec.extra_attribs:
        if attrib.name in _OWN_KEYS or attrib.name.startswith("oiio:"):
            continue
        attributes.append([attrib.name, str(attrib.type), _plain(attrib.value)])
    meta["attributes"] = attributes
    return meta


def _plain(value):
    """msgpack-safe: tuples -> lists, numpy scalars -> Python."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def attribute(metadata: dict | None, name: str, default=None):
    """The value of header attribute ``name`` kept in ``metadata["attributes"]``."""
    for entry in (metadata or {}).get("attributes", ()):
        if entry[0] == name:
            return entry[2]
    return default


def apply_metadata(spec, metadata: dict | None, *, path: str) -> None:
    """Set windows, pixel aspect, time code and frame rate from ``metadata`` on ``spec``.

    ``spec`` already has the pixel size; a metadata data window of another size is
    an error (the metadata belongs to a different image).
    """
    if not metadata:
        return
    if "width" in metadata and "height" in metadata:
        if (int(metadata["width"]), int(metadata["height"])) != (spec.width, spec.height):
            raise InputError(
                f"metadata for {path} describes a {metadata['width']}x{metadata['height']} data window "
                f"but the pixels are {spec.width}x{spec.height}",
                "pass the metadata of an image of the same size, or drop x/y/width/height from it")
    for name, type_name, value in metadata.get("attributes", ()):
        if name in _OWN_KEYS or name.startswith("oiio:"):
            continue
        try:
            type_desc = oiio.TypeDesc(str(type_name))
        except Exception:  # noqa: BLE001 - an odd type is skipped, never fatal
            continue
        spec.attribute(str(name), type_desc, tuple(value) if isinstance(value, list) else value)
    for key in ("x", "y", "full_x", "full_y", "full_width", "full_height"):
        if key in metadata:
            setattr(spec, key, int(metadata[key]))
    if "pixelAspectRatio" in metadata:
        spec.attribute("PixelAspectRatio", float(metadata["pixelAspectRatio"]))
    if "smpte:TimeCode" in metadata:
        packed, user_bits = (int(v) for v in metadata["smpte:TimeCode"])
        spec.attribute("smpte:TimeCode", oiio.TypeTimeCode, (packed, user_bits))
    elif "timecode" in metadata:
        spec.attribute("smpte:TimeCode", oiio.TypeTimeCode, (timecode_from_string(metadata["timecode"]), 0))
    if "framesPerSecond" in metadata:
        spec.attribute("FramesPerSecond", oiio.TypeRational, fps_rational(metadata["framesPerSecond"]))
    if metadata.get(FINGERPRINT_KEY):
        spec.attribute(FINGERPRINT_KEY, str(metadata[FINGERPRINT_KEY]))


__all__ = ["fps_rational", "metadata_from_spec", "apply_metadata", "timecode_to_string", "timecode_from_string",
           "WINDOW_KEYS", "FINGERPRINT_KEY", "REWRITTEN", "attribute"]
