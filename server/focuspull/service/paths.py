"""Path policy: the server reads and writes only under its configured roots.

Paths are resolved (symlinks followed, ``..`` collapsed) *before* the check, so a
link inside a root that points outside it is refused.  ``..`` components are refused
outright even when they would land inside a root: nobody needs them and they are the
usual shape of an attack.
"""
from __future__ import annotations

import os
from pathlib import Path

from focuspull.errors import PathPolicyError
from focuspull.io.frames import SequencePattern  # pure Python: no OpenImageIO

_MAX_SEQUENCE_FILES = 100_000  # files of one sequence checked; more is refused
_MAX_TREE_ENTRIES = 10_000  # entries under a checkpoint directory checked; more is refused


class PathPolicy:
    """Checks paths against a fixed set of root directories."""

    def __init__(self, roots: tuple[str, ...] | list[str]) -> None:
        self.roots = tuple(Path(os.path.realpath(os.path.expanduser(r))) for r in roots)

    def _within(self, p: Path) -> bool:
        return any(p == r or r in p.parents for r in self.roots)

    def resolve(self, path: str, *, kind: str = "path") -> Path:
        """The real path of ``path`` if it is allowed; raises PathPolicyError otherwise.

        Relative paths are taken relative to the first root.
        """
        if not isinstance(path, str) or not path or "\x00" in path:
            raise PathPolicyError(f"{kind} {path!r:.200} is not a usable path", "pass a file path as text")
        if not self.roots:
            raise PathPolicyError(f"{kind} {path!r:.200} refused: this server has no file roots",
                                  "start the server with --root DIR, or send frames in-band")
        if ".." in Path(path).parts:
            raise PathPolicyError(f"{kind} {path!r:.200} contains '..'",
                                  "use a path without '..' under one of the server roots: "
                                  + ", ".join(map(str, self.roots)))
        p = Path(os.path.expanduser(path))
        if not p.is_absolute():
            p = self.roots[0] / p
        real = Path(os.path.realpath(p))
        if not self._within(real):
            where = f" (it resolves to {real})" if real != p else ""
            raise PathPolicyError(f"{kind} {path!r:.200} is outside the server roots{where}",
                                  "put the files under one of: " + ", ".join(map(str, self.roots)))
        return real

    def check_sequence(self, pattern: str, *, kind: str = "sequence") -> Path:
        """Check a frame-sequence pattern: its directory and every existing file of it.

        The files are enumerated exactly as the reader does (``SequencePattern``: a
        directory listing, no glob, so ``[``, ``*`` or ``?`` in a directory name are
        plain characters), and each is resolved on its own, so
        ``shot.0003.exr -> /etc/passwd`` in an allowed directory is still refused.
        """
        real = self.resolve(pattern, kind=kind)
        seq = SequencePattern(str(real))
        frames = seq.frames_on_disk()
        if len(frames) > _MAX_SEQUENCE_FILES:
            raise PathPolicyError(f"{kind} {pattern!r:.200} matches {len(frames)} files; this server checks "
                                  f"at most {_MAX_SEQUENCE_FILES}", "split the sequence into smaller folders")
        for frame in frames:
            self.resolve(seq.path(frame), kind=kind)
        return real

    def check_tree(self, path: str, *, kind: str = "directory") -> Path:
        """Check a directory and everything under it (symlinked entries and the
        directories they lead to included); returns its real path.

        For directories a job reads whole (model checkpoints): a ``config.json`` that
        links outside the roots is refused.  At most ``_MAX_TREE_ENTRIES`` entries.
        """
        real = self.resolve(path, kind=kind)
        if not real.is_dir():
            return real
        seen_dirs = {real}
        pending = [real]
        count = 0
        while pending:
            directory = pending.pop()
            try:
                entries = os.listdir(directory)
            except OSError:
                continue  # unreadable for the server too: nothing to open
            for name in entries:
                count += 1
                if count > _MAX_TREE_ENTRIES:
                    raise PathPolicyError(f"{kind} {path!r:.200} holds more than {_MAX_TREE_ENTRIES} entries",
                                          "point it at a directory holding only the checkpoint")
                entry = self.resolve(str(directory / name), kind=kind)
                if entry.is_dir() and entry not in seen_dirs:
                    seen_dirs.add(entry)
                    pending.append(entry)
        return real
