"""Learned models by import string, and the per-device cache that keeps them loaded.

Every swappable model (depth estimators, refiners) is registered here by import string, as
uvicorn registers protocol implementations: the registry costs nothing to import, and a
model's code (and torch) loads only when a job asks for it.  A factory is called as
``factory(checkpoint_dir, device) -> callable`` and must load from the local folder only.

The render server's worker holds one :class:`ModelCache` per device, so a model is loaded
once per device and kept across jobs; a plain ``focuspull render`` uses a cache for the run.

Example::

    >>> sorted(MODELS["depth"])[:1]
    ['tiny']
"""
from __future__ import annotations

import importlib
import os
import threading
from typing import Callable

from focuspull.errors import ModelError

#: kind -> name -> "module:attribute" of a factory ``(checkpoint_dir, device) -> model`` (or,
#: for models registered at run time by a plugin or a test, the factory itself).
MODELS: dict[str, dict[str, object]] = {
    "depth": {
        "tiny": "focuspull.stages.depth.sources:tiny_estimator",
        "hf": "focuspull.stages.depth.hf_estimator:HFDepthEstimator",
        "vda": "focuspull.stages.depth.video_depth_anything:VideoDepthAnythingEstimator",
    },
    "refine": {  # one name per precision (focuspull.stages.refine.MODEL_BY_PRECISION)
        "onestep": "focuspull.stages.refine:refiner_factory",
        "onestep-fp32": "focuspull.stages.refine:refiner_factory_fp32",
        "onestep-bf16": "focuspull.stages.refine:refiner_factory_bf16",
    },
}


def register_model(kind: str, name: str, target) -> None:
    """Register ``target`` (``"package.module:factory"``, or a factory) as model ``name`` of ``kind``."""
    if kind not in MODELS:
        raise ModelError(f"unknown model kind {kind!r}", f"use one of: {', '.join(MODELS)}")
    if not isinstance(name, str) or not name:
        raise ModelError(f"a model name must be a non-empty string, got {name!r}", "register under a short name")
    module, sep, attr = target.partition(":") if isinstance(target, str) else ("", ":", "")
    if isinstance(target, str) and not (module and sep and attr):
        raise ModelError(f"model target {target!r} is not 'package.module:factory'",
                         "register an import string such as 'focuspull.stages.depth.sources:tiny_estimator'")
    current = MODELS[kind].get(name)
    if current is not None and current != target:
        raise ModelError(f"a {kind} model named {name!r} is already registered ({current})", "pick another name")
    MODELS[kind][name] = target


def model_names(kind: str) -> tuple[str, ...]:
    return tuple(sorted(MODELS.get(kind, {})))


def resolve_factory(kind: str, name: str) -> Callable:
    """The factory registered as ``name``; a clear error if unknown or not importable."""
    target = MODELS.get(kind, {}).get(name)
    if target is None:
        raise ModelError(f"unknown {kind} model {name!r}",
                         f"use one of: {', '.join(model_names(kind)) or '(none registered)'}")
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"the {kind} model {name!r} cannot load ({target}: {exc})",
                         "install focuspull with the extra that model needs (make test installs all)") from None


class ModelCache:
    """Models loaded on one device, kept until the cache is dropped.

    Keyed by (kind, name, real path of the checkpoint folder, its modification time), so a
    retrained checkpoint in the same folder is reloaded.  Thread-safe: the server's worker
    owns one per device."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._models: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times a factory ran (tests: once per model and device)

    def get(self, kind: str, name: str, checkpoint_dir: str):
        path = os.path.realpath(checkpoint_dir) if checkpoint_dir else ""
        try:
            stamp = os.stat(path).st_mtime_ns if path else 0
        except OSError:
            stamp = 0  # the factory reports the missing folder in its own words
        key = (kind, name, path, stamp)
        with self._lock:
            if key not in self._models:
                self._models[key] = resolve_factory(kind, name)(checkpoint_dir, self.device)
                self.loads += 1
            return self._models[key]

    def loaded(self) -> list[str]:
        """``["depth:tiny", ...]``: the models this device holds now."""
        return sorted({f"{kind}:{name}" for kind, name, _, _ in self._models})
