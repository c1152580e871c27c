"""Atomic file creation: write a temp file beside the target, fsync, then rename.

A reader (Nuke, Resolve, ``--resume``) therefore sees either the old file, no file,
or the whole new file, never a half-written one: ``os.replace`` is atomic within
one filesystem, and the temp file lives in the target's directory so it is on the
same filesystem.

Temp names keep the real extension last (OpenImageIO and FFmpeg choose the format
by extension) and start with a dot so file browsers and sequence scanners skip
them: ``shot.0001.exr`` -> ``.shot.0001.exr.<host>-<pid>-<random>.tmp.exr``.  The host
name is in the name because farm hosts share output directories but not process tables:
only the host that wrote a temp can tell whether its writer is still alive.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from typing import Iterator

# ``.<final>.<host>-<pid>-<hex>.tmp<.ext>``; names from before the host was added have no host.
_TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.(?:(?P<host>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*?)-)?"
                        r"(?P<pid>\d+)-[0-9a-f]+\.tmp(\.[^./]*)?$")
# A temp whose writer cannot be checked (another host on a shared filesystem) is
# treated as abandoned only after this long without a write.
STALE_TEMP_AGE_S = 3600.0


def host_token() -> str:
    """This host's name as it appears in temp names (letters, digits, ``_``, ``-``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", socket.gethostname().split(".")[0])
    name = re.sub(r"-+", "-", name[:40]).strip("-")
    return name or "host"


def temp_path_for(final_path: str) -> str:
    """A unique temp path in the directory of ``final_path`` with the same extension."""
    directory, name = os.path.split(os.fspath(final_path))
    ext = os.path.splitext(name)[1]
    token = f"{host_token()}-{os.getpid()}-{secrets.token_hex(4)}"
    return os.path.join(directory, f".{name}.{token}.tmp{ext}")


def is_temp_path(path: str) -> bool:
    """True for a name made by :func:`temp_path_for`."""
    return bool(_TEMP_NAME.match(os.path.basename(os.fspath(path))))


def fsync_path(path: str) -> None:
    """Flush a file's data to stable storage (writers close their own handles)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; not possible on every OS/filesystem.
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(final_path: str) -> Iterator[str]:
    """Yield a temp path to write; on success it is fsynced and renamed to ``final_path``.

    On any exception (including KeyboardInterrupt) the temp file is removed, the
    exception propagates, and ``final_path`` is left as it was.
    """
    final_path = os.fspath(final_path)
    tmp = temp_path_for(final_path)
    try:
        yield tmp
        if not os.path.isfile(tmp):
            raise FileNotFoundError(f"the writer did not create {tmp}")
        fsync_path(tmp)
        os.replace(tmp, final_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_directory(os.path.dirname(final_path))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _process_state(pid: int) -> tuple[str, float] | None:
    """``(state letter, start time as a Unix time)`` from /proc, or None where there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        with open("/proc/stat", "rb") as fh:
            btime = next(float(line.split()[1]) for line in fh.read().decode().splitlines()
                         if line.startswith("btime "))
        fields = stat[stat.rindex(")") + 2:].split()  # the name in (...) may hold spaces
        return fields[0], btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(pid: int, temp_mtime: float) -> bool:
    """Whether the process that named a temp of this host may still be writing it.

    Dead when the pid is gone, a zombie (exited, not yet reaped by its parent), or a
    process that started after the temp was last written (the pid was reused).
    """
    if not _pid_alive(pid):
        return False
    state = _process_state(pid)
    if state is None:
        return True  # no /proc: the age fallback decides
    letter, started = state
    if letter in ("Z", "X"):
        return False
    return started <= temp_mtime + 2.0  # clock-tick rounding of the start time


def remove_stale_temp_files(directory: str, *, max_age_s: float = STALE_TEMP_AGE_S) -> list[str]:
    """Delete temp files left by writers that died (e.g. SIGKILL, power loss).

    A temp written on *this* host is stale when its writer process is gone: exited, a
    zombie, or its pid now belongs to a process started after the temp was written.  A
    temp of another live process of this host is still removed once it has not been
    written for ``max_age_s`` (a writer writes a frame in seconds; the age covers what /proc
    cannot tell).  This process's own temps are never touched.  A temp from another host
    (or of unknown host) cannot be checked -- farm hosts share the filesystem but not the
    process table -- so it is stale only when not modified for ``max_age_s``.
    Returns the removed paths.
    """
    removed = []
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return removed
    now = time.time()
    here = host_token()
    for name in names:
        match = _TEMP_NAME.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        try:
            mtime = os.path.getmtime(path)
        except OSError:
            continue
        age_s = now - mtime
        pid = int(match.group("pid"))
        if match.group("host") == here:
            stale = pid != os.getpid() and (age_s > max_age_s or not _writer_alive(pid, mtime))
        else:
            stale = age_s > max_age_s
        if stale:
            with contextlib.suppress(OSError):
                os.remove(path)
                removed.append(path)
    return removed


__all__ = ["atomic_output", "temp_path_for", "is_temp_path", "remove_stale_temp_files", "fsync_path",
           "host_token", "STALE_TEMP_AGE_S"]
