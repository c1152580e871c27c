"""Path policy: the server reads and writes only under its configured roots.

Paths are resolved (symlinks followed, ``..`` collapsed) *before* the check, so a
link inside a root that points outside it is refused.  ``..`` components are refused
outright even when they would land inside a root: nobody needs them and they are the
usual shape of an attack.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from focuspull.errors import PathPolicyError

# Frame-number placeholders in sequence patterns: ####, @@@, %04d, $F4.
_PLACEHOLDER = re.compile(r"#+|@+|%0?\d*d|\$F\d*")
_MAX_GLOB = 100_000


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
        """Check a frame-sequence pattern: its directory and every existing file it matches.

        Each matching file is resolved on its own, so ``shot.0003.exr -> /etc/passwd``
        in an allowed directory is still refused.
        """
        real = self.resolve(pattern, kind=kind)
        if _PLACEHOLDER.search(real.name):
            wildcard = str(real.parent / _PLACEHOLDER.sub("*", glob.escape(real.name)))
            for i, match in enumerate(glob.iglob(wildcard)):
                if i >= _MAX_GLOB:
                    break
                self.resolve(match, kind=kind)
        return real
