"""Write plain data (maps, lists, strings, numbers, booleans) as block-style YAML 1.2.

The farm files (OpenJD templates, Deadline Cloud bundle files) are YAML by convention, and
the base install has no YAML library.  The data written here is small and fully known, so
a writer of ~40 lines does: every string value is a double-quoted scalar spelled as a JSON string
literal (a JSON string is a valid YAML double-quoted scalar), so no value can change type or
meaning on the way back (``"1001"``, ``"yes"``, ``"#"``, ``": "`` all stay strings).

    >>> print(dump_yaml({"name": "Render", "args": ["--frames", "1-10"], "count": 3}), end="")
    name: "Render"
    args:
      - "--frames"
      - "1-10"
    count: 3
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

# Keys written bare: identifiers that no YAML 1.1 or 1.2 reader takes for a boolean or null.
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}


def _key(key: str) -> str:
    if _BARE_KEY.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    return _scalar(key)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite number {value!r} to a farm file")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    raise TypeError(f"cannot write a {type(value).__name__} to a farm file")


def _lines(value: Any, indent: str) -> list[str]:
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{_key(str(key))}:"
            if isinstance(item, (dict, list)) and item:
                lines.append(head)
                lines += _lines(item, indent + "  ")
            else:
                lines.append(f"{head} {_block_or_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _lines(item, indent + "  ")
                # The first line of the nested block shares the "- " line.
                lines.append(f"{indent}- {nested[0][len(indent) + 2:]}")
                lines += nested[1:]
            else:
                lines.append(f"{indent}- {_block_or_scalar(item)}")
    return lines


def _block_or_scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump_yaml(data: dict) -> str:
    """``data`` (a map) as YAML text ending in a newline."""
    if not isinstance(data, dict):
        raise TypeError("a farm file holds one map at the top")
    return "\n".join(_lines(data, "")) + "\n"


__all__ = ["dump_yaml"]
