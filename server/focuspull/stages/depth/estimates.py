"""Estimated disparity, computed once per frame and kept on disk per clip and checkpoint.

A depth model is the slowest part of a render, and its output does not depend on the lens,
the focus or the bokeh.  :class:`EstimateStore` runs the estimator **exactly once** per
frame (batched when the estimator has ``batch``) and keeps each result on disk under

    <cache root>/<model name>-<checkpoint digest>/<frame digest>.npy

* the **checkpoint digest** hashes every file of the checkpoint folder (relative name,
  size, modification time) and the full text of its JSON files, so retrained weights in
  the same folder never reuse old estimates;
* the **frame digest** hashes the pixels the estimator sees (``H x W x 3`` float32), so
  the key follows the picture, not its file name: a re-render with other lens settings,
  another chunk of the same clip, or the same frames sent in-band all hit the cache.

Cache root: ``$FOCUSPULL_CACHE_DIR/depth`` when set, else ``$XDG_CACHE_HOME/focuspull/depth``
(``~/.cache/focuspull/depth``).  Files are written atomically (temporary name, then
rename), so a crash never leaves a half-written estimate.  When the root cannot be
created the store keeps the estimates in memory for the run instead.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Callable, Iterable, Sequence

import numpy as np

from focuspull.errors import DepthError

_DIGEST_BYTES = 16


def cache_root() -> str:
    """The folder that holds cached depth estimates (see the module docstring)."""
    explicit = os.environ.get("FOCUSPULL_CACHE_DIR")
    if explicit:
        return os.path.join(explicit, "depth")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "focuspull", "depth")


def checkpoint_digest(checkpoint_dir: str) -> str:
    """Hex digest of a checkpoint folder: every file's relative name, size and mtime, and
    the full contents of its ``*.json`` files.  ``""`` (no folder) digests to a constant."""
    h = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    if checkpoint_dir and os.path.isdir(checkpoint_dir):
        root = os.path.realpath(checkpoint_dir)
        for directory, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(directory, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                h.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
                if name.endswith(".json"):
                    with open(path, "rb") as fh:
                        h.update(fh.read())
    return h.hexdigest()


def frame_digest(rgb: np.ndarray) -> str:
    """Hex digest of the pixels an estimator sees (shape, then float32 bytes)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    h = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    h.update(repr(rgb.shape).encode())
    h.update(memoryview(rgb).cast("B"))
    return h.hexdigest()


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


class EstimateStore:
    """Relative disparity of frames from one estimator, each frame estimated once.

    Args:
        estimator: ``rgb (H x W x 3) -> H x W`` disparity; when it also has
            ``batch(list of rgb) -> list of disparity`` (and ``batch_size``), misses are
            estimated in batches.
        model: the registered model name (part of the cache folder name).
        checkpoint_dir: its local folder (digested, see :func:`checkpoint_digest`).
        root: cache root; default :func:`cache_root`.  ``None`` after a failed
            ``makedirs``: the store then keeps estimates in memory.
    """

    def __init__(self, estimator: Callable[[np.ndarray], np.ndarray], model: str, checkpoint_dir: str,
                 root: str | None = "") -> None:
        self.estimator = estimator
        self.folder: str | None = None
        if root is not None:
            folder = os.path.join(root or cache_root(),
                                  f"{_safe_name(model)}-{checkpoint_digest(checkpoint_dir)}")
            try:
                os.makedirs(folder, exist_ok=True)
                self.folder = folder
            except OSError:
                self.folder = None
        self._memory: dict[str, np.ndarray] = {}
        self.estimated = 0  # frames the estimator ran on (tests: each frame once)
        self.loaded = 0  # frames read back from the disk cache

    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key + ".npy")

    def _lookup(self, key: str) -> np.ndarray | None:
        if key in self._memory:
            return self._memory[key]
        if self.folder is None:
            return None
        try:
            value = np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None  # absent, or unreadable: estimate again and overwrite
        self.loaded += 1
        return value

    def _keep(self, key: str, disparity: np.ndarray) -> None:
        if self.folder is None:
            self._memory[key] = disparity
            return
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, disparity, allow_pickle=False)
            os.replace(tmp, self._path(key))
        except OSError:
            self._memory[key] = disparity  # a full disk: keep it for this run
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _run(self, rgbs: Sequence[np.ndarray]) -> list[np.ndarray]:
        batch = getattr(self.estimator, "batch", None)
        if batch is not None and len(rgbs) > 1:
            out = list(batch(list(rgbs)))
        else:
            out = [self.estimator(rgb) for rgb in rgbs]
        self.estimated += len(rgbs)
        checked = []
        for rgb, disparity in zip(rgbs, out):
            disparity = np.asarray(disparity, dtype=np.float32)
            if disparity.shape != rgb.shape[:2]:
                raise DepthError(f"the depth model returned {disparity.shape} for a {rgb.shape[:2]} image",
                                 "the estimator must return one H x W disparity per frame")
            checked.append(disparity)
        return checked

    def get(self, rgb: np.ndarray) -> np.ndarray:
        """Relative disparity of one ``H x W x 3`` frame (estimated, or from the cache)."""
        return self.get_many([rgb])[0]

    def get_many(self, rgbs: Iterable[np.ndarray]) -> list[np.ndarray]:
        """Like :meth:`get` for several frames; the misses go to the estimator together."""
        rgbs = [np.ascontiguousarray(np.asarray(r, dtype=np.float32)[..., :3]) for r in rgbs]
        keys = [frame_digest(r) for r in rgbs]
        out: list[np.ndarray | None] = [self._lookup(k) for k in keys]
        first: dict[str, int] = {}  # a frame held twice (a freeze) is estimated once
        missing = [first.setdefault(k, i) for i, (k, value) in enumerate(zip(keys, out))
                   if value is None and k not in first]
        if missing:
            for i, disparity in zip(missing, self._run([rgbs[i] for i in missing])):
                self._keep(keys[i], disparity)
                out[i] = disparity
        return [value if value is not None else out[first[key]] for key, value in zip(keys, out)]

    def get_clip(self, rgbs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Relative disparity of every frame of a whole clip from a *temporal* estimator (one
        with ``temporal = True`` and ``clip(list of rgb) -> list of disparity``, e.g. Video Depth
        Anything), whose result for a frame depends on its neighbours.

        The key of frame ``i`` hashes the digests of **all** the clip's frames and ``i``, so
        a cached result is reused only for the same clip; the estimator runs once over the
        whole clip when any frame is missing."""
        rgbs = [np.ascontiguousarray(np.asarray(r, dtype=np.float32)[..., :3]) for r in rgbs]
        h = hashlib.blake2b(digest_size=_DIGEST_BYTES)
        for rgb in rgbs:
            h.update(frame_digest(rgb).encode())
        clip_key = "clip-" + h.hexdigest()
        keys = [f"{clip_key}-{i:06d}" for i in range(len(rgbs))]
        out = [self._lookup(k) for k in keys]
        if any(value is None for value in out):
            results = list(self.estimator.clip(list(rgbs)))
            self.estimated += len(rgbs)
            if len(results) != len(rgbs):
                raise DepthError(f"the depth model returned {len(results)} frames for a clip of {len(rgbs)}",
                                 "a temporal estimator must return one disparity per frame")
            out = []
            for key, rgb, disparity in zip(keys, rgbs, results):
                disparity = np.asarray(disparity, dtype=np.float32)
                if disparity.shape != rgb.shape[:2]:
                    raise DepthError(f"the depth model returned {disparity.shape} for a {rgb.shape[:2]} image",
                                     "the estimator must return one H x W disparity per frame")
                self._keep(key, disparity)
                out.append(disparity)
        return out
