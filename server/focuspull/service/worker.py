"""Worker threads: one per device, each running jobs from the fair queue.

A worker never touches the ROUTER socket (one socket per thread): it has its own
PUSH socket to the server thread's inproc PULL socket and sends fully encoded
replies prefixed with the client's routing identity; the server thread forwards them.

The runner is injected (``runner_factory(device) -> runner``) so the queue, cancel
and error handling are testable with a stand-in; the default runs the real
pipeline.  The factory is called once in the worker thread, which is where models
and other per-device state get loaded, once.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, NamedTuple, Protocol

import numpy as np
import zmq

from focuspull import protocol
from focuspull.errors import Cancelled, FocuspullError
from focuspull.service.budgets import SendBudget, check_render_memory
from focuspull.service.jobs import CANCELLED, DONE, FAILED, RUNNING, FairQueue, Job

log = logging.getLogger("focuspull.service")


class Outcome(NamedTuple):
    """What a run did: frames rendered, frames skipped (resume), in-band output frames."""

    rendered: list
    skipped: list
    frames: dict


class Runner(Protocol):
    def __call__(self, job: Job, on_event: Callable[[dict], None],
                 cancelled: Callable[[], bool]) -> Outcome:
        """Run ``job``; ``frames`` holds in-band output ({} when written to disk)."""


class PipelineRunner:
    """The real thing: ``focuspull.pipeline.run.run_job`` on one device."""

    def __init__(self, device: str, max_render_bytes: int | None = None) -> None:
        self.device = device
        self.max_render_bytes = max_render_bytes
        # Imported here, in the worker thread, so torch loads once per process and
        # host-side imports of focuspull.service.* stay light.
        from focuspull.pipeline import run as pipeline
        from focuspull.stages.models import ModelCache

        self._run_job = pipeline.run_job
        self.cache = ModelCache(device)  # models load once per device and stay for later jobs

    def models(self) -> list[str]:
        """``["depth:tiny", ...]``: every model a job may name (registered by import string)."""
        return offered()[1]

    def stages(self) -> list[str]:
        return offered()[0]

    def __call__(self, job: Job, on_event, cancelled) -> Outcome:
        spec = job.spec
        if getattr(spec, "device", self.device) != self.device:
            spec = spec.replace(device=self.device)
        if self.max_render_bytes is not None and job.inband is None and spec.input.pattern:
            self._check_frame_size(spec)
        result = self._run_job(spec, on_event=on_event, cancelled=cancelled, inband=job.inband,
                               models=self.cache)
        return Outcome(list(result.rendered), list(result.skipped), dict(result.frames or {}))

    def _check_frame_size(self, spec) -> None:
        """Refuse frames too big to render within the budget, from one file's header."""
        from focuspull.io.frames import SequencePattern  # noqa: PLC0415
        from focuspull.io.images import read_header  # noqa: PLC0415

        pattern = SequencePattern(spec.input.pattern)
        frames = list(spec.frames) or pattern.frames_on_disk()[:1]
        if not frames:
            return  # the pipeline says what is missing
        try:
            header = read_header(pattern.path(frames[0]))
        except FocuspullError:
            return  # preflight reports it with every other problem
        check_render_memory(header.height, header.width, min(header.nchannels, 4), self.max_render_bytes)


def offered() -> tuple[list[str], list[str]]:
    """(stages, models) the real pipeline runs: refine only when a refiner is registered.
    From the registry alone (no torch), so a server answers hello while its workers load."""
    from focuspull.stages.models import MODELS

    models = [f"{kind}:{name}" for kind in MODELS for name in sorted(MODELS[kind])]
    return ["depth", "render"] + (["refine"] if MODELS["refine"] else []), models


def echo(job: Job, on_event, cancelled) -> Outcome:
    """Transport-only job (``submit`` with ``echo``): return the in-band images as-is."""
    frames = job.inband or {}
    t0 = time.perf_counter()
    for i, n in enumerate(sorted(frames)):
        if cancelled():
            raise Cancelled("job cancelled", "nothing was written")
        on_event({"type": "frame", "frame": n, "done": i + 1, "total": len(frames),
                  "fps": (i + 1) / max(time.perf_counter() - t0, 1e-9), "eta_s": 0.0, "path": None})
    return Outcome(sorted(frames), [], {n: frames[n]["rgba"] for n in frames})


class Worker(threading.Thread):
    """Takes jobs from ``queue`` until ``stopping`` is set; reports through ``endpoint``."""

    def __init__(self, device: str, queue: FairQueue, ctx: zmq.Context, endpoint: str,
                 runner_factory: Callable[[str], Runner], stopping: threading.Event,
                 budget: SendBudget | None = None) -> None:
        super().__init__(name=f"focuspull-worker-{device}", daemon=True)
        self.device = device
        self.queue = queue
        self.ctx = ctx
        self.endpoint = endpoint
        self.runner_factory = runner_factory
        self.stopping = stopping
        self.budget = budget
        self.current: Job | None = None
        self.runner: Runner | None = None
        self.ready = threading.Event()
        self.load_error: BaseException | None = None

    def run(self) -> None:
        push = self.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 2000)
        push.connect(self.endpoint)
        try:
            try:
                self.runner = self.runner_factory(self.device)
            except Exception as exc:  # reported per job: the server keeps serving echo/status
                log.exception("worker %s could not load the pipeline", self.device)
                self.load_error = exc
            self.ready.set()
            while not self.stopping.is_set():
                job = self.queue.get(timeout=0.2)
                if job is not None:
                    self.current = job
                    try:
                        self._run(job, push)
                    finally:
                        self.current = None
                        job.release()
        finally:
            push.close()

    def _run(self, job: Job, push: zmq.Socket) -> None:
        def send(msg_type: str, fields: dict, arrays=(), wait: bool = True) -> None:
            frames = protocol.encode(msg_type, fields, arrays)
            if self.budget is not None:
                # Counted until ZeroMQ takes it: a client that does not read pauses its job here.
                n = protocol.message_bytes(frames)
                if not wait:
                    self.budget.add(job.client, n)  # final replies (done, error) always go out
                else:
                    def paused() -> None:
                        job.paused = True
                        log.info("job %s paused: its client is not reading its results", job.id)

                    ok = self.budget.reserve(job.client, n, job.cancel.is_set, on_wait=paused)
                    job.paused = False
                    if not ok:
                        raise Cancelled("job cancelled while its client was not reading its results",
                                        "finished frames are complete; read results as they come")
            push.send_multipart([job.client, *frames], copy=False)

        def finite(x: Any) -> float | None:  # inf/NaN ("unknown") travel as nil
            return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None

        def on_event(event: dict) -> None:
            job.done = int(event.get("done", job.done))
            job.total = int(event.get("total", job.total))
            send("progress", {"job": job.id, "frame": int(event["frame"]), "done": job.done,
                              "total": job.total, "fps": finite(event.get("fps")),
                              "eta_s": finite(event.get("eta_s")), "path": event.get("path")})

        job.state, job.device = RUNNING, self.device
        t0 = time.perf_counter()
        log.info("job %s started on %s", job.id, self.device)
        try:
            if job.cancel.is_set():
                raise Cancelled("job cancelled before it started", "nothing was written")
            if job.echo:
                outcome = echo(job, on_event, job.cancel.is_set)
            elif self.runner is None:
                raise self.load_error or RuntimeError("no pipeline")
            else:
                outcome = self.runner(job, on_event, job.cancel.is_set)
            frames = outcome.frames
            for n in sorted(frames):
                if job.cancel.is_set():
                    raise Cancelled("job cancelled while sending results", "resubmit to get the frames")
                send("result", {"job": job.id, "frame": int(n)}, [np.asarray(frames[n])])
            # The state is final before the client hears "done": a listing it asks for next says so.
            job.state, job.finished = DONE, time.time()
            send("done", wait=False, fields={"job": job.id, "rendered": [int(n) for n in outcome.rendered],
                          "skipped": [int(n) for n in outcome.skipped],
                          "elapsed_s": time.perf_counter() - t0})
            log.info("job %s done: %d frame(s) in %.2f s", job.id, job.done, time.perf_counter() - t0)
        except Exception as exc:  # any failure ends this job only; the worker keeps going
            job.state, job.finished = (CANCELLED if isinstance(exc, Cancelled) else FAILED), time.time()
            if isinstance(exc, Cancelled):
                log.info("job %s cancelled", job.id)
            else:
                log.error("job %s failed: %s", job.id, exc, exc_info=not hasattr(exc, "code"))
            send("error", {"job": job.id, **protocol.error_fields(exc)}, wait=False)
        finally:
            job.finished = job.finished or time.time()


def describe(workers: list[Worker]) -> list[dict[str, Any]]:
    """Worker rows for ``status_reply``."""
    return [{"device": w.device, "job": w.current.id if w.current else None,
             "alive": w.is_alive()} for w in workers]
