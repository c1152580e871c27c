"""focuspull: video depth of field for compositing and finishing.

``import focuspull`` is light (no torch): host Pythons (Nuke, Resolve) use
``focuspull.client``.  The renderer is loaded on first use of ``render_frame``.
"""
from __future__ import annotations

from focuspull.errors import FocuspullError

__version__ = "0.1.0"
__all__ = ["FocuspullError", "render_frame", "render_coc", "__version__"]


def __getattr__(name: str):
    # Lazy: the render stack imports torch, which host Pythons must not pay for.
    if name in ("render_frame", "render_coc"):
        from focuspull.stages.render import layered as render

        return getattr(render, name)
    raise AttributeError(f"module 'focuspull' has no attribute {name!r}")
