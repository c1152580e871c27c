"""Server configuration: one frozen object, one registry of options.

Precedence, highest first: command line > environment (``FOCUSPULL_*``) > config file
(TOML) > default.  The command line (``focuspull serve``) builds its arguments from
:data:`OPTIONS`, so a new option is added in exactly one place.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from focuspull.errors import InputError

try:  # stdlib from Python 3.11; the tomli backport on 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - depends on the interpreter
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

DEFAULT_PORT = 5690


def _roots(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [p for p in value.split(os.pathsep) if p]
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise ValueError("a list of directories")
    return tuple(value)


def _positive_int(value: Any) -> int:
    n = int(value)
    if n < 1:
        raise ValueError("a positive integer")
    return n


def _positive_float(value: Any) -> float:
    x = float(value)
    if not x > 0:
        raise ValueError("a positive number")
    return x


def _log_level(value: Any) -> str:
    level = str(value).lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ValueError("one of debug, info, warning, error")
    return level


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass(frozen=True)
class Option:
    name: str  # field of ServerConfig; CLI flag is --name-with-dashes, env FOCUSPULL_NAME
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str | None = None

    @property
    def env(self) -> str:
        return "FOCUSPULL_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("bind", str, f"tcp://127.0.0.1:{DEFAULT_PORT}",
           "ZeroMQ endpoint to listen on; any address but loopback needs --token", "ENDPOINT"),
    Option("roots", _roots, (), "a directory the server may read and write (repeatable; in the "
           f"environment '{os.pathsep}'-separated); none = in-band jobs only", "DIR"),
    Option("token", _opt_str, None, "shared secret every message must carry", "TOKEN"),
    Option("device", str, "auto", "'auto', 'cpu', or comma-separated torch devices "
           "(one worker each), e.g. cuda:0,cuda:1", "DEVICES"),
    Option("max_queued", _positive_int, 64, "jobs waiting in the queue before 'busy' replies", "N"),
    Option("max_frames", _positive_int, 10_000, "frames per job", "N"),
    Option("max_message_mb", _positive_int, 2048, "largest message accepted, MiB", "N"),
    Option("max_queued_mb", _positive_int, 8192,
           "in-band frames held by queued jobs before 'busy' replies, MiB", "N"),
    Option("max_unsent_mb", _positive_int, 256,
           "results waiting to be sent to one client, MiB; beyond it that client's job pauses until "
           "it reads", "N"),
    Option("max_render_mb", _positive_int, 16384,
           "estimated render memory of one frame, MiB; jobs with larger frames are refused", "N"),
    Option("heartbeat_s", _positive_float, 1.0, "interval of server heartbeats, seconds", "S"),
    Option("client_timeout_s", _positive_float, 10.0,
           "a client silent this long has its jobs cancelled, seconds", "S"),
    Option("log_level", _log_level, "info", "debug, info, warning or error", "LEVEL"),
)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs, resolved and validated.  Immutable."""

    bind: str = OPTIONS[0].default
    roots: tuple[str, ...] = ()
    token: str | None = None
    device: str = "auto"
    max_queued: int = 64
    max_frames: int = 10_000
    max_message_mb: int = 2048
    max_queued_mb: int = 8192
    max_unsent_mb: int = 256
    max_render_mb: int = 16384
    heartbeat_s: float = 1.0
    client_timeout_s: float = 10.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        check_bind(self.bind, self.token)

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 2**20

    @property
    def max_unsent_bytes(self) -> int:
        return self.max_unsent_mb * 2**20


def is_loopback(endpoint: str) -> bool:
    """True for endpoints only this machine can reach (loopback TCP, ipc, inproc)."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # '*', an interface name or a host name: reachable from elsewhere
        return False


def check_bind(endpoint: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if "://" not in endpoint:
        raise InputError(f"bind endpoint {endpoint!r} has no transport",
                         "write it like tcp://127.0.0.1:5690")
    if not is_loopback(endpoint) and not token:
        raise InputError(
            f"refusing to listen on {endpoint}: it is reachable from other machines and no "
            "auth token is set, so anyone on the network could read and write your files",
            "pass --token SECRET (or set FOCUSPULL_TOKEN) and give clients the same token, "
            "or bind tcp://127.0.0.1:PORT")


def load_file(path: str | os.PathLike | None) -> dict[str, Any]:
    """Options from a TOML file (top-level keys or a [serve] table); {} when no file."""
    if not path:
        return {}
    if tomllib is None:
        raise InputError(f"cannot read config file {path}: TOML needs Python 3.11+ or the tomli package",
                         "pip install tomli, or pass the options on the command line / FOCUSPULL_*")
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read config file {path}: {exc}",
                         "pass an existing TOML file to --config") from None
    return dict(data.get("serve", data))


def resolve(cli: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
            file: Mapping[str, Any] | None = None) -> ServerConfig:
    """Merge the sources (CLI > env > file > default) into a ServerConfig.

    ``cli`` values of None mean "not given".  Unknown file keys are an error, so a
    typo does not silently fall back to a default.
    """
    cli = cli or {}
    env = os.environ if env is None else env
    file = file or {}
    known = {o.name for o in OPTIONS}
    unknown = set(file) - known
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(sorted(unknown))} in the config file",
                         f"known keys: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        for source, raw in (("command line", cli.get(opt.name)), (opt.env, env.get(opt.env)),
                            ("config file", file.get(opt.name))):
            if raw is None or raw == () or raw == []:
                continue
            try:
                values[opt.name] = opt.parse(raw)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{opt.flag} from the {source}: {raw!r} is not valid ({exc})",
                                 opt.help) from None
            break
        else:
            values[opt.name] = opt.default
    names = {f.name for f in fields(ServerConfig)}
    assert names == known, "OPTIONS and ServerConfig disagree"
    return ServerConfig(**values)
