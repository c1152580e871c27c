"""Running one focuspull job from a host script: a worker thread owns the client socket,
the UI thread reads its progress from a queue and can cancel at any time.

By path first: the server reads the frames and writes the output where they are.  When the
server refuses the paths (``PathPolicyError``: its ``--root`` does not cover the folder, or
it has no roots) the frames travel in-band: read here with the small EXR reader, sent with
the job, and the results written back as EXRs into the same output folder.

Cancel wins: once the user pressed Cancel the run ends as cancelled, even when the last
frame arrives in the meantime; the script then removes what it added.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Optional

from focuspull.client import Client
from focuspull.errors import Cancelled, FocuspullError, PathPolicyError

from focuspull_resolve import exr
from focuspull_resolve.sequences import Sequence


def check_server(endpoint: str, timeout_s: float = 3.0) -> dict:
    """The server's hello, or ``ServiceUnavailable`` / ``AuthError`` from the client."""
    with Client(endpoint, timeout_s=timeout_s, retries=0) as c:
        return c.hello("focuspull-resolve")


def read_inband(seq: Sequence, frames, want_depth: bool) -> dict[int, dict]:
    """``{frame: {"rgba", "depth"}}`` from an EXR sequence (for a server that cannot see it)."""
    import numpy as np

    out = {}
    for frame in frames:
        path = seq.path(frame)
        planes = exr.read_exr(path)
        colour = [c for c in ("R", "G", "B", "A") if c in planes]
        if colour[:3] != ["R", "G", "B"]:
            raise exr.ExrError(f"{path} has channels {', '.join(sorted(planes))}, not R, G, B")
        entry = {"rgba": np.stack([planes[c] for c in colour], axis=-1).astype(np.float32)}
        if want_depth:
            name = exr.find_depth_channel(planes)
            if name is None:
                raise exr.ExrError(f"{path} has no depth channel (Z); channels are {', '.join(sorted(planes))}")
            entry["depth"] = planes[name].astype(np.float32)
        out[frame] = entry
    return out


class JobRun:
    """One job on a worker thread.  ``poll()`` from the UI thread; ``cancel()`` any time."""

    def __init__(self, endpoint: str, job: dict, *, source: Sequence, frames: list[int], output: Sequence,
                 timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.job = job
        self.source = source
        self.frames = list(frames)
        self.output = output
        self.timeout_s = timeout_s
        self.events: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self.cancel_requested = threading.Event()
        self.job_id: Optional[str] = None
        self.inband = False
        self.done = 0
        self.outcome: Optional[str] = None  # "done", "cancelled", "failed"
        self.error: Optional[BaseException] = None
        self.written: list[str] = []
        self._thread = threading.Thread(target=self._work, name="focuspull-job", daemon=True)

    # -- worker thread ------------------------------------------------------------------------
    def start(self) -> "JobRun":
        self._thread.start()
        return self

    def _submit(self, client: Client):
        job = dict(self.job)
        job["input"] = dict(job.get("input", {}), pattern=self.source.pattern)
        job["output"] = dict(job.get("output", {}), pattern=self.output.pattern, overwrite=True)
        job["frames"] = self.frames
        try:
            return client.submit(job)
        except PathPolicyError:
            pass  # the server cannot see this folder: send the frames with the job
        self.inband = True
        job["input"] = {k: v for k, v in job["input"].items() if k != "pattern"}
        job["output"] = {k: v for k, v in job["output"].items() if k not in ("pattern", "overwrite")}
        want_depth = job.get("depth", {}).get("kind", "channel") == "channel"
        frames = read_inband(self.source, self.frames, want_depth)
        self.events.put(("inband", len(frames)))
        return client.submit(job, inband=frames)

    def _work(self) -> None:
        try:
            with Client(self.endpoint, timeout_s=self.timeout_s) as client:
                handle = self._submit(client)
                self.events.put(("submitted", handle.id))
                if self.cancel_requested.is_set():
                    handle.cancel()
                for event in handle:
                    self.events.put(("frame", event))
                if self.inband:
                    half = self.job.get("output", {}).get("half", True)
                    for frame, pixels in sorted(handle.frames.items()):
                        names = ["R", "G", "B", "A"][:pixels.shape[-1]]
                        planes = {n: pixels[..., i] for i, n in enumerate(names)}
                        self.written.append(exr.write_exr(self.output.path(frame), planes, half=half))
                else:
                    self.written = [self.output.path(f) for f in handle.rendered or []]
            self.events.put(("done", None))
        except Cancelled as exc:
            self.events.put(("cancelled", exc))
        except (FocuspullError, exr.ExrError, OSError) as exc:
            self.events.put(("failed", exc))
        except Exception as exc:  # noqa: BLE001 - a host script must never die silently
            self.events.put(("failed", exc))

    # -- UI thread ------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask for cancel; the server is told at once when the job is already queued."""
        self.cancel_requested.set()
        if self.job_id is not None:
            try:
                with Client(self.endpoint, timeout_s=self.timeout_s, retries=0) as c:
                    c.cancel(self.job_id)
            except FocuspullError:
                pass  # the job ended meanwhile, or the server is gone: the worker reports it

    def poll(self) -> tuple[str, bool]:
        """Drain the worker's events: ``(status text, finished)``."""
        while True:
            try:
                kind, value = self.events.get_nowait()
            except queue.Empty:
                break
            if kind == "submitted":
                self.job_id = value
                if self.cancel_requested.is_set():
                    self.cancel()
            elif kind == "frame":
                self.done = int(value.get("done", self.done + 1))
            elif kind in ("done", "cancelled", "failed"):
                self.outcome = kind
                self.error = value
                if self.cancel_requested.is_set():
                    self.outcome = "cancelled"
        total = len(self.frames)
        if self.outcome is not None:
            return {"done": "finished", "cancelled": "cancelled"}.get(self.outcome, "failed"), True
        if self.cancel_requested.is_set():
            return "cancelling...", False
        where = " (frames sent in-band)" if self.inband else ""
        return f"rendering frame {self.done} of {total}{where}", False

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)


def run_with_progress(ui, title: str, run: JobRun, interval_ms: int = 100) -> JobRun:
    run.start()
    ui.progress(title, run.poll, run.cancel, interval_ms)
    run.join()
    return run


def remove_files(paths) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


Poll = Callable[[], tuple[str, bool]]
