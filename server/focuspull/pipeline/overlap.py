"""Overlap a render's file I/O with its rendering: a bounded read-ahead and write-behind.

While frame *i* renders, one thread decodes frame *i+1* (:class:`ReadAhead`) and another
encodes and writes frame *i-1* (:class:`WriteBehind`).  OpenImageIO and OpenEXR release
the GIL while they decode, compress and write, so on a CPU whose cores the renderer does
not keep busy the I/O costs (almost) no wall time.

Bounds and guarantees:

* at most one frame is read ahead and one frame is being written: memory grows by two
  frames, whatever the length of the shot (``service/budgets.py`` counts them);
* a write is still atomic (:func:`focuspull.io.atomic.atomic_output`, in the writer
  thread): a failure or a cancel never leaves a half-written frame;
* a frame counts as done -- ``JobResult.rendered``, its progress event -- only once its
  write has finished; events are emitted by the caller's thread, in frame order;
* a failed write fails the job naming the frame; frames after it are never written;
* however the run ends (error, cancel, Ctrl-C), the write in flight is finished (or
  failed and cleaned up) before the run returns or raises: no thread outlives it.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

from focuspull.errors import FocuspullError, SequenceError


class ReadAhead:
    """Decode one frame ahead on a reader thread: ``clip.prefetch(frame)``, then
    ``then(frame)`` (the pipeline's depth -> disparity) when given."""

    def __init__(self, clip, then: Optional[Callable[[int], object]] = None) -> None:
        self.clip, self.then = clip, then
        self._executor: Optional[ThreadPoolExecutor] = None
        self._pending: Optional[Future] = None

    def ahead(self, frame: Optional[int]) -> None:
        """Start reading ``frame`` (None: nothing) once the previous read-ahead is over.

        Called before each frame renders, the previous read-ahead is that frame's own read,
        which the render would wait for anyway; so one read is in flight, never a queue."""
        if self._pending is not None:
            self._pending.result()  # _read() never raises: a bad frame fails in its own read
            self._pending = None
        if frame is None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="focuspull-read")
        self._pending = self._executor.submit(self._read, frame)

    def _read(self, frame: int) -> None:
        self.clip.prefetch(frame)
        if self.then is not None:
            try:
                self.then(frame)
            except Exception:  # noqa: BLE001 - the render's own call raises it, naming the frame
                pass

    def close(self) -> None:
        """Wait for the read under way (a decode cannot be interrupted) and stop the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._pending = None


class WriteBehind:
    """Write one frame on a writer thread while the caller renders the next.

    Use: ``finish()`` (the previous write: its frame and path, or its error) before
    ``start()``-ing the next, so at most one write is in flight.
    """

    def __init__(self) -> None:
        self._executor: Optional[ThreadPoolExecutor] = None
        self._pending: Optional[tuple[int, str, Future]] = None

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def start(self, frame: int, path: str, write: Callable[[], str]) -> None:
        """Run ``write() -> path written`` for ``frame`` on the writer thread."""
        if self._pending is not None:
            raise RuntimeError("WriteBehind.start() with a write in flight: finish() it first")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="focuspull-write")
        self._pending = (frame, path, self._executor.submit(write))

    def finish(self) -> Optional[tuple[int, str]]:
        """Wait for the write in flight: ``(frame, path written)``, or None when there was none.

        A failed write raises here, naming the frame (a :class:`FocuspullError` from the
        writer is kept, with the frame put in front; anything else becomes a
        :class:`SequenceError`)."""
        if self._pending is None:
            return None
        frame, path, future = self._pending
        self._pending = None
        try:
            return frame, future.result()
        except FocuspullError as exc:
            if f"frame {frame}" in exc.message:
                raise
            raise type(exc)(f"frame {frame}: {exc.message}", exc.hint, field=exc.field) from exc
        except OSError as exc:
            raise SequenceError(f"frame {frame}: writing {path} failed: {exc.strerror or exc}",
                                "check free disk space and permissions of the output directory; frames "
                                "before it are complete, render again using 'output.resume'",
                                field="output.resume") from exc
        except Exception as exc:  # noqa: BLE001 - never lose which frame failed
            raise SequenceError(f"frame {frame}: writing {path} failed: {exc}",
                                "render again using 'output.resume'; report it if it repeats",
                                field="output.resume") from exc

    def close(self) -> None:
        """Stop the writer thread (after the write under way, if any, ended)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


__all__ = ["ReadAhead", "WriteBehind"]
