"""Where the node finds its server and its cache: environment > preferences file > default.

``FOCUSPULL_ENDPOINT`` (default ``tcp://127.0.0.1:5690``), ``FOCUSPULL_TOKEN`` (none),
``FOCUSPULL_CACHE`` (default ``<temp>/focuspull_cache``) and ``FOCUSPULL_TRANSFER``
(``auto``: frames by path, in-band when the server cannot see the cache folder; ``path``;
``inband``), ``FOCUSPULL_TIMEOUT`` (seconds of server silence, default 10).  The preferences panel writes ``~/.nuke/focuspull.json`` (or
``FOCUSPULL_PREFS``); an environment variable still wins, and the panel says so.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass

from focuspull.errors import InputError

ENV = {"endpoint": "FOCUSPULL_ENDPOINT", "token": "FOCUSPULL_TOKEN", "cache": "FOCUSPULL_CACHE",
       "transfer": "FOCUSPULL_TRANSFER", "timeout_s": "FOCUSPULL_TIMEOUT"}
TRANSFERS = ("auto", "path", "inband")


@dataclass(frozen=True)
class Settings:
    endpoint: str = "tcp://127.0.0.1:5690"
    token: str = ""
    cache: str = os.path.join(tempfile.gettempdir(), "focuspull_cache")
    transfer: str = "auto"
    #: seconds of server silence before the node gives up (every wait has this bound)
    timeout_s: float = 10.0


def prefs_path() -> str:
    return os.environ.get("FOCUSPULL_PREFS") or os.path.join(os.path.expanduser("~"), ".nuke", "focuspull.json")


def read_prefs() -> dict:
    try:
        with open(prefs_path()) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the FocusPull preferences {prefs_path()}: {exc}",
                         "fix or delete the file, then set the preferences again") from None
    return {k: v for k, v in data.items() if k in ENV} if isinstance(data, dict) else {}


def load() -> Settings:
    values = asdict(Settings())
    values.update(read_prefs())
    for key, var in ENV.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
    try:
        values["timeout_s"] = float(values["timeout_s"])
        if not values["timeout_s"] > 0:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"timeout {values['timeout_s']!r} is not a positive number of seconds",
                         "set FOCUSPULL_TIMEOUT / the preferences to e.g. 10") from None
    if values["transfer"] not in TRANSFERS:
        raise InputError(f"transfer {values['transfer']!r} is not one of {', '.join(TRANSFERS)}",
                         "set FOCUSPULL_TRANSFER / the preferences to auto, path or inband")
    return Settings(**values)


def overridden() -> list[str]:
    """Settings an environment variable decides (the panel shows them as such)."""
    return [key for key, var in ENV.items() if os.environ.get(var)]


def save_prefs(values: dict) -> str:
    """Write the preferences file atomically; returns its path."""
    path = prefs_path()
    data = {k: str(v) for k, v in values.items() if k in ENV}
    if data.get("transfer", "auto") not in TRANSFERS:
        raise InputError(f"transfer {data['transfer']!r} is not one of {', '.join(TRANSFERS)}",
                         "choose auto, path or inband")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".focuspull_", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
    return path
