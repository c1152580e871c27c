"""Memory budgets of the server: results waiting for a client, and one frame's render.

*Unsent results.*  A client that heartbeats but never reads its results would otherwise
make the server hold every result it produces.  Each message a worker produces for a
client is counted against that client from the moment the worker hands it over until
ZeroMQ has taken it off the server's own queue; a worker that would push the count over
``max_unsent_bytes`` waits (its job pauses between frames) until the client reads.  What
lies beyond (ZeroMQ's send pipe, at most ``SEND_HWM`` messages, and the kernel's socket
buffers) is bounded by those.

*Render memory.*  The layered renderer's working set is proportional to the frame's
pixels: about ``RENDER_BYTES_PER_VALUE`` bytes per pixel and channel (colour + coverage),
measured with ``bench/speed.py``'s peak-RAM child (4K RGB, 64 px radius: +1.52 GiB with
two blur threads each holding an FFT, i.e. ~48 bytes per value; rounded up for the
border, the hidden layer and the blurred rectangles waiting to be composited).  The
pipeline adds two frames in flight beside the one rendering (``pipeline/overlap.py``: the
next frame decoded ahead, the last one being encoded and written):
``IN_FLIGHT_BYTES_PER_VALUE``, measured as the peak RSS of `focuspull render` with and
without them (1080p RGB + Z: +140 MB, ~17 bytes per value; rounded up).
"""
from __future__ import annotations

import threading
from typing import Callable

from focuspull.errors import InputError

# Messages ZeroMQ queues per client beyond the server's own accounting.  Small, but not
# tiny: with 4, a client reading 64 MiB results back to back saw gaps of more than 0.2 s
# (tests/service/test_client.py, short request timeout).
SEND_HWM = 16
RENDER_BYTES_PER_VALUE = 56
IN_FLIGHT_BYTES_PER_VALUE = 20


def render_memory_bytes(height: int, width: int, channels: int) -> int:
    """Estimated peak memory a job adds for ``height x width x channels`` frames: the
    renderer's working set and the frames read ahead and written behind."""
    return int(height) * int(width) * (int(channels) + 1) * (RENDER_BYTES_PER_VALUE + IN_FLIGHT_BYTES_PER_VALUE)


def check_render_memory(height: int, width: int, channels: int, max_bytes: int) -> None:
    """InputError when one frame of this size would need more than ``max_bytes`` to render."""
    need = render_memory_bytes(height, width, channels)
    if need > max_bytes:
        raise InputError(f"a {width}x{height} frame with {channels} channels needs about "
                         f"{need / 2**20:.0f} MiB to render; this server allows {max_bytes / 2**20:.0f} MiB",
                         "render at a smaller size (or in tiles), or start the server with a larger "
                         "--max-render-mb")


class SendBudget:
    """Bytes handed over for each client and not yet taken by ZeroMQ; thread-safe.

    Workers call :meth:`reserve` before producing a message (blocking while the client is
    over budget), the server thread :meth:`release` once the message left its queue or was
    dropped (client gone).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._held: dict[bytes, int] = {}
        self._cond = threading.Condition()

    def held(self, client: bytes) -> int:
        with self._cond:
            return self._held.get(client, 0)

    def reserve(self, client: bytes, nbytes: int, stop: Callable[[], bool], on_wait: Callable[[], None] = lambda: None,
                poll_s: float = 0.2) -> bool:
        """Count ``nbytes`` for ``client``, first waiting while it already holds the budget.

        One message is always let through when nothing is held, however large, so a result
        bigger than the budget still goes out.  Returns False (nothing counted) when
        ``stop()`` became true while waiting (the job was cancelled).
        """
        with self._cond:
            waited = False
            while self._held.get(client, 0) > 0 and self._held.get(client, 0) + nbytes > self.max_bytes:
                if stop():
                    return False
                if not waited:
                    waited = True
                    on_wait()
                self._cond.wait(poll_s)
            self._held[client] = self._held.get(client, 0) + nbytes
            return True

    def add(self, client: bytes, nbytes: int) -> None:
        """Count ``nbytes`` without waiting (small final replies that must go out)."""
        with self._cond:
            self._held[client] = self._held.get(client, 0) + nbytes

    def release(self, client: bytes, nbytes: int) -> None:
        with self._cond:
            left = self._held.get(client, 0) - nbytes
            if left > 0:
                self._held[client] = left
            else:
                self._held.pop(client, None)
            self._cond.notify_all()
