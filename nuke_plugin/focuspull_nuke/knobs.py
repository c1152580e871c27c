"""The FocusPull knob table, generated from the job's field registry.

One :class:`KnobSpec` per registry entry that has a Nuke ``knob`` name: the knob class
follows the field's kind (float -> Double_Knob, int -> Int_Knob, bool -> Boolean_Knob,
choice -> Enumeration_Knob, str -> String_Knob, path -> File_Knob), the label and tooltip
are the field's label and help, the slider range its minimum / maximum.  Two registry
entries with one knob name become one 2-D knob (``focal_point``: XY_Knob over
``focus.point_x`` / ``focus.point_y``).  An optional number (None = not set) gets a
checkbox ``use_<knob>`` in front of it.  Adding a field to the registry adds its knob here
without new node code.

Fields the node sets itself (where the frames are, resume) have no knob.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from focuspull.spec.fields import FIELDS, Field

#: Job paths the node fills in itself: the cache folders, resume, and the matte channel
#: when the matte input is connected (the knob still names one in the input).
NODE_MANAGED = ("input.pattern", "output.pattern", "output.resume", "output.overwrite")
#: Nuke-specific presentation of a bool field: (choices, value meaning True).
ENUM_BOOLS = {"output.setup_view": (("result", "focal plane setup"), "focal plane setup")}
_KIND_TO_CLASS = {"float": "double", "int": "int", "bool": "bool", "choice": "enum", "str": "string",
                  "path": "file", "compression": "string"}


@dataclass(frozen=True)
class KnobSpec:
    """One knob of the node.

    ``cls``: double, int, bool, enum, string, file or xy (the adapter maps these to
    Nuke knob classes); ``paths``: the job field(s) it sets (two for xy)."""

    name: str
    cls: str
    label: str
    tooltip: str
    paths: tuple
    default: object = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: tuple = ()
    animatable: bool = False
    #: name of the checkbox that switches an optional value on, or None
    enable: Optional[str] = None
    section: str = ""

    @property
    def numeric(self) -> bool:
        return self.cls in ("double", "int", "xy")


def _tooltip(entry: Field) -> str:
    rng = entry.range_text()
    anim = " Animate it: the keys become the job's keyframes." if entry.animatable else ""
    return f"{entry.help[:1].upper()}{entry.help[1:]}{' (' + rng + ')' if rng else ''}.{anim} [job: {entry.path}]"


def _spec(entry: Field) -> KnobSpec:
    cls = _KIND_TO_CLASS[entry.kind]
    choices = entry.choices
    default = entry.default
    if entry.path in ENUM_BOOLS:
        cls, (choices, on) = "enum", ENUM_BOOLS[entry.path]
        default = on if entry.default else choices[0]
    numeric = cls in ("double", "int")
    enable = f"use_{entry.knob}" if numeric and entry.optional else None
    if numeric and default is None:
        default = entry.minimum if entry.minimum is not None and entry.minimum > 0 else 0
    return KnobSpec(entry.knob, cls, entry.label or entry.path, _tooltip(entry), (entry.path,), default,
                    entry.minimum, entry.maximum, tuple(choices), entry.animatable, enable, entry.section)


def build_table(fields=FIELDS) -> tuple[KnobSpec, ...]:
    """The knob table, in registry order (fields sharing a knob name merge into one xy)."""
    table: list[KnobSpec] = []
    by_name: dict[str, int] = {}
    for entry in fields:
        if not entry.knob or entry.path in NODE_MANAGED:
            continue
        if entry.knob in by_name:
            first = table[by_name[entry.knob]]
            if first.cls != "double" or entry.kind != "float" or len(first.paths) != 1:
                raise ValueError(f"knob {entry.knob!r} is shared by {first.paths[0]} and {entry.path}; "
                                 "only two float fields can share a knob (an XY knob)")
            label = first.label.rsplit(" ", 1)[0] if first.label.endswith(" x") else first.label
            table[by_name[entry.knob]] = KnobSpec(
                first.name, "xy", label, f"{first.tooltip} / {_tooltip(entry)}", first.paths + (entry.path,),
                (0.0, 0.0), first.minimum, first.maximum, (), first.animatable and entry.animatable,
                None, first.section)  # a picked point is used in focus mode 'point' only
            continue
        by_name[entry.knob] = len(table)
        table.append(_spec(entry))
    return tuple(table)


TABLE = build_table()


def knob_for(path: str) -> Optional[KnobSpec]:
    return next((k for k in TABLE if path in k.paths), None)
