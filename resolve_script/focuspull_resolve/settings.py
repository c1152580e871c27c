"""The settings window's rows, generated from the job's field registry, and the job they make.

No field is listed here by hand: labels, ranges, choices, defaults and help come from
:data:`focuspull.spec.fields.FIELDS`; a field added there appears in the window.  Only the
fields the scripts fill in themselves (where frames come from and go to) are left out.
Errors naming a job field (``exc.field``) are said in the window's words
(:func:`focuspull.spec.fields.translate` with ``"dialog"``) and shown next to that field.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Optional

from focuspull.spec.fields import FIELDS, Field, field_info, translate

#: Fields the scripts set from the comp / clip (paths of frames, what to do with old output).
SCRIPT_OWNED = frozenset({"input.pattern", "output.pattern", "output.preview", "output.preview_fps",
                          "output.resume", "output.overwrite"})
SERVER_ROW = "server"  # not a job field: where `focuspull serve` listens
DATA_KEY = "focuspull.settings"
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5690"


def dialog_fields() -> tuple[Field, ...]:
    return tuple(f for f in FIELDS if f.path not in SCRIPT_OWNED)


def row_id(path: str) -> str:
    """UI Manager IDs are identifiers: ``lens.fstop`` -> ``f_lens__fstop``."""
    return "f_" + path.replace(".", "__")


def _widget(f: Field) -> str:
    if f.kind == "choice":
        return "choice"
    if f.kind == "bool":
        return "bool"
    bounded = f.minimum is not None and f.maximum is not None
    if f.kind in ("int", "float") and not f.animatable and not f.optional and bounded:
        return f.kind
    return "text"


def defaults() -> dict[str, Any]:
    values: dict[str, Any] = {SERVER_ROW: os.environ.get("FOCUSPULL_ENDPOINT") or DEFAULT_ENDPOINT}
    for f in dialog_fields():
        values[f.path] = _display(f, f.default)
    return values


def _display(f: Field, value: Any) -> Any:
    widget = _widget(f)
    if widget == "text":
        if value is None:
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)
    return value


def load(text: Optional[str]) -> dict[str, Any]:
    """Remembered values (a JSON string from comp data) over the defaults; anything unknown
    or of the wrong type is dropped, so an old or hand-edited entry cannot break the window."""
    values = defaults()
    try:
        stored = json.loads(text) if text else {}
    except (TypeError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        return values
    for key, value in stored.items():
        if key in values and type(value) is type(values[key]):
            if key != SERVER_ROW and _widget(field_info(key)) == "choice" and value not in field_info(key).choices:
                continue
            values[key] = value
    return values


def dump(values: Mapping[str, Any]) -> str:
    return json.dumps(dict(values), sort_keys=True)


def rows(values: Mapping[str, Any], errors: Mapping[str, str]) -> list[dict]:
    """The form rows for :meth:`focuspull_resolve.host.UI.form`."""
    out = [{"id": SERVER_ROW, "label": "Server", "widget": "text", "value": values[SERVER_ROW],
            "tooltip": "where 'focuspull serve' listens, e.g. tcp://127.0.0.1:5690",
            "error": errors.get(SERVER_ROW, "")}]
    for f in dialog_fields():
        tip = f.help + (f" ({f.range_text()})" if f.range_text() else "")
        if f.animatable:
            tip += "; keyframes: 1001:1.5,1040:8@smooth"
        row = {"id": row_id(f.path), "label": f.label or f.path, "widget": _widget(f), "value": values[f.path],
               "tooltip": tip, "error": errors.get(f.path, "")}
        if row["widget"] == "choice":
            row["choices"] = tuple(f.choices)
        if row["widget"] in ("int", "float"):
            row["minimum"], row["maximum"] = f.minimum, f.maximum
        out.append(row)
    return out


def from_form(answer: Mapping[str, Any]) -> dict[str, Any]:
    """``{row id: widget value}`` back to ``{path: value}``."""
    values = {SERVER_ROW: str(answer[SERVER_ROW]).strip()}
    for f in dialog_fields():
        value = answer[row_id(f.path)]
        widget = _widget(f)
        if widget == "int":
            value = int(value)
        elif widget == "float":
            value = float(value)
        elif widget == "bool":
            value = bool(value)
        else:
            value = str(value).strip()
        values[f.path] = value
    return values


class FieldError(Exception):
    """A value the window cannot turn into a job value; ``field`` is the job path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _parse_text(f: Field, text: str) -> Any:
    if text == "":
        return None
    if f.kind in ("int", "float"):
        try:
            number = int(text) if f.kind == "int" else float(text)
        except ValueError:
            if f.animatable:
                return text  # keyframes; the job spec checks them
            raise FieldError(f.path, f"'{text[:40]}' is not a{'n integer' if f.kind == 'int' else ' number'}")
        if isinstance(number, float) and not math.isfinite(number):
            raise FieldError(f.path, "must be a finite number")
        return number
    return text


def job_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    """The job map of the window's values (paths of frames are added by the scripts).

    Empty text = the field is not set (the job's default applies)."""
    job: dict[str, Any] = {}
    for f in dialog_fields():
        value = values[f.path]
        if _widget(f) == "text":
            value = _parse_text(f, value)
            if value is None:
                continue
        section, _, name = f.path.rpartition(".")
        (job.setdefault(section, {}) if section else job)[name] = value
    return job


def say(text: str) -> str:
    """``text`` with every job path it mentions said as the window's label."""
    for f in sorted(FIELDS, key=lambda f: -len(f.path)):
        if f.path in text:
            text = translate(text, f.path, "dialog")
    return text


def error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", "")
    return say(message) + (f" - {say(hint)}" if hint else "")


def place_error(exc: BaseException) -> tuple[str, str]:
    """``(row key, text)``: the dialog field an error belongs next to (``""`` = the top line)."""
    field = getattr(exc, "field", None)
    shown = {f.path for f in dialog_fields()}
    return (field if field in shown else ""), error_text(exc)
