"""Progress of a frame-range render: throughput/ETA, and a terminal progress line.

No dependencies beyond the standard library.  :class:`Throughput` is the arithmetic the
pipeline puts into its ``frame`` events (``fps``, ``eta_s``); :class:`ProgressLine`
prints those events to a terminal:

* on a TTY: one line rewritten in place (``\\r``), e.g.
  ``focuspull:  12/48 frames  25%  3.1 fps  ETA 0:11  frame 1012``;
* elsewhere (farm logs, pipes): one plain line every ``every`` frames and for the last
  frame, so logs stay short but show life.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO


class Throughput:
    """Frames per second and time left, from the wall clock since the first frame started.

    ``clock`` is injectable so tests can drive time by hand.
    """

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = int(total)
        self.done = 0
        self._clock = clock
        self._start = clock()

    def tick(self) -> tuple[float, float]:
        """Count one finished frame; return ``(fps, eta_s)``."""
        self.done += 1
        elapsed = max(self._clock() - self._start, 1e-9)
        fps = self.done / elapsed
        eta_s = (self.total - self.done) / fps if fps > 0 else float("inf")
        return fps, max(eta_s, 0.0)

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._start


def format_duration(seconds: float) -> str:
    """``75.4`` -> ``'1:15'``, ``3725`` -> ``'1:02:05'``; unknown -> ``'--:--'``."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_event(event: dict) -> str:
    """One human line for a pipeline ``frame`` event."""
    done, total = int(event["done"]), int(event["total"])
    width = len(str(total))
    percent = 100.0 * done / total if total else 100.0
    return (f"focuspull: {done:>{width}}/{total} frames {percent:3.0f}%  "
            f"{event.get('fps', 0.0):.2f} fps  ETA {format_duration(event.get('eta_s'))}  "
            f"frame {event['frame']}")


class ProgressLine:
    """Prints pipeline events; use as ``on_event``, then call :meth:`close`.

    Args:
        stream: where to print (default ``sys.stderr``, so stdout stays clean for scripts).
        every: on a non-TTY, print every ``every``-th frame (and always the last).
        is_tty: override TTY detection (tests).
    """

    def __init__(self, stream: Optional[TextIO] = None, every: int = 10,
                 is_tty: Optional[bool] = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.every = max(1, int(every))
        if is_tty is None:
            isatty = getattr(self.stream, "isatty", None)
            is_tty = bool(isatty and isatty())
        self.is_tty = is_tty
        self._line_open = False
        self._last_len = 0

    def __call__(self, event: dict) -> None:
        if event.get("type") != "frame":
            return
        line = format_event(event)
        if self.is_tty:
            # Pad over the previous line: the new one can be shorter (ETA shrinking).
            pad = " " * max(0, self._last_len - len(line))
            self.stream.write("\r" + line + pad)
            self._last_len = len(line)
            self._line_open = True
        elif event["done"] % self.every == 0 or event["done"] == event["total"]:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line so later output starts on a fresh line."""
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False
