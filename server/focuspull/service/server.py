"""The server loop: one thread owns the ROUTER socket; workers report through inproc.

Every client message is decoded and validated (``focuspull.protocol``), its token
checked, and answered; anything wrong becomes an ``error`` reply and a log line,
never a crash.  Jobs go into a fair queue that one worker per device drains.
Clients silent for ``client_timeout_s`` have their jobs cancelled; the server sends
heartbeats to every client with live jobs so clients notice a dead server.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable

import zmq

import focuspull
from focuspull import protocol
from focuspull.errors import (Cancelled, FocuspullError, InputError, JobSpecError, PathPolicyError, ProtocolError,
                              ServerBusy, UnknownJob)
from focuspull.service.auth import check_token
from focuspull.service.budgets import SEND_HWM, SendBudget, check_render_memory
from focuspull.service.config import ServerConfig
from focuspull.service.jobs import CANCELLED, FINISHED, QUEUED, FairQueue, Job
from focuspull.service.paths import PathPolicy
from focuspull.service.worker import PipelineRunner, Runner, Worker, describe, offered

log = logging.getLogger("focuspull.service")

#: Stages a server without a loaded pipeline still offers (echo jobs); the workers say the rest.
BASE_STAGES = ("echo",)
_HISTORY = 256  # finished jobs kept for 'jobs' listings
_POLL_MS = 100
_FLUSH_POLL_MS = 10  # while messages wait for a slow reader
_RCVHWM = 16  # whole messages ZeroMQ reads ahead per client before the loop takes them
ZAP_USER = "focuspull"  # PLAIN user name; the password is the token


def who(ident: bytes) -> str:
    """A short, stable name of a routing identity for logs.  Not the identity itself:
    whoever reads the log must not learn identities to connect with."""
    return hashlib.sha256(ident).hexdigest()[:8]


def resolve_devices(device: str) -> list[str]:
    """'auto' -> every CUDA device, else ['cpu']; otherwise the comma-separated list."""
    if device != "auto":
        return [d.strip() for d in device.split(",") if d.strip()] or ["cpu"]
    try:
        import torch  # server side only; the client never gets here

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # no torch, or a broken driver: CPU still works
        n = 0
    return [f"cuda:{i}" for i in range(n)] or ["cpu"]


def check_job_paths(spec: Any, policy: PathPolicy) -> Any:
    """Every path in a RenderJob checked against the policy; returns the job with the
    resolved absolute paths (relative ones are relative to the first root)."""
    try:
        return _check_job_paths(spec, policy)
    except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES... from the file system: the path is bad
        raise PathPolicyError(f"a path of the job cannot be used: {exc.strerror or type(exc).__name__}",
                              "pass shorter, plain paths under the server roots") from None


def _check_job_paths(spec: Any, policy: PathPolicy) -> Any:
    inp, depth, out = spec.input, spec.depth, spec.output
    if inp.pattern is not None:
        inp = dataclasses.replace(inp, pattern=str(policy.check_sequence(inp.pattern, kind="input.pattern")))
    if depth.pattern is not None:
        depth = dataclasses.replace(depth, pattern=str(policy.check_sequence(depth.pattern, kind="depth.pattern")))
    if depth.checkpoint_dir is not None:
        depth = dataclasses.replace(depth, checkpoint_dir=str(policy.check_tree(depth.checkpoint_dir,
                                                                                kind="depth.checkpoint_dir")))
    if out.pattern is not None:
        out = dataclasses.replace(out, pattern=str(policy.check_sequence(out.pattern, kind="output.pattern")))
    if out.preview is not None:
        out = dataclasses.replace(out, preview=str(policy.resolve(out.preview, kind="output.preview")))
    aperture, colour = spec.aperture, spec.colour
    if aperture.filter_image is not None:
        aperture = dataclasses.replace(aperture, filter_image=str(
            policy.resolve(aperture.filter_image, kind="aperture.filter_image")))
    if colour.config is not None and not colour.config.startswith("ocio://"):  # built-in configs are no files
        colour = dataclasses.replace(colour, config=str(policy.resolve(colour.config, kind="colour.config")))
    return dataclasses.replace(spec, input=inp, depth=depth, output=out, aperture=aperture, colour=colour)


class Server:
    """Serve until :meth:`stop` (signal handlers call it).  One instance, one ROUTER."""

    def __init__(self, config: ServerConfig, *,
                 runner_factory: Callable[[str], Runner] | None = None,
                 ctx: zmq.Context | None = None) -> None:
        self.config = config
        self.policy = PathPolicy(config.roots)
        self.limits = protocol.Limits(max_message_bytes=config.max_message_bytes)
        self.queue = FairQueue(config.max_queued)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.last_seen: dict[bytes, float] = {}
        self.recent_submits: OrderedDict[tuple[bytes, str], dict] = OrderedDict()
        self.stopping = threading.Event()
        self.runner_factory = runner_factory or PipelineRunner
        self.ctx = ctx or zmq.Context.instance()
        self.devices = resolve_devices(config.device)
        self.workers: list[Worker] = []
        self.started = time.time()
        self.router: zmq.Socket | None = None
        self.bound: str | None = None
        self.authenticator: Any = None
        # Per client: messages ZeroMQ would not take yet (its send pipe is full because the
        # client is not reading), in order, with the bytes each counts in ``budget``.
        self.outbox: dict[bytes, deque] = {}
        self.budget = SendBudget(config.max_unsent_bytes)

    # -- lifecycle -------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler or another thread)."""
        self.stopping.set()

    def serve(self) -> None:
        router = self.ctx.socket(zmq.ROUTER)
        if self.config.token:
            # Authenticate in the ZeroMQ handshake (ZAP, PLAIN): a peer without the token
            # never gets a pipe, so it can neither make ZeroMQ buffer its messages nor take
            # over a client's routing identity (ROUTER_HANDOVER) and read its job stream.
            from zmq.auth.thread import ThreadAuthenticator

            zap_log = logging.getLogger("focuspull.service.zap")
            zap_log.setLevel(logging.INFO)  # pyzmq logs the password and identity at DEBUG
            self.authenticator = ThreadAuthenticator(self.ctx, log=zap_log)
            self.authenticator.start()
            self.authenticator.configure_plain(domain="*", passwords={ZAP_USER: self.config.token})
            router.plain_server = True
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable -> EHOSTUNREACH, not a silent drop
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client keeps its identity
        router.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes)  # per frame, before buffering
        router.setsockopt(zmq.RCVHWM, _RCVHWM)  # bounds read-ahead: MAXMSGSIZE is per frame only
        # A small send pipe per client: when it is full, messages wait in ``outbox`` (counted
        # in ``budget``, which pauses the client's job) instead of growing without bound.
        router.setsockopt(zmq.SNDHWM, SEND_HWM)
        router.setsockopt(zmq.LINGER, 1000)
        try:
            router.bind(self.config.bind)
        except zmq.ZMQError:
            router.close(linger=0)
            if self.authenticator is not None:
                self.authenticator.stop()
            raise
        self.router = router
        self.bound = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        events_endpoint = f"inproc://focuspull-events-{id(self)}"
        pull = self.ctx.socket(zmq.PULL)
        pull.bind(events_endpoint)
        worker_stop = threading.Event()
        factory = self.runner_factory
        if factory is PipelineRunner:  # the real pipeline keeps to the render-memory budget
            def factory(device: str) -> Runner:
                return PipelineRunner(device, max_render_bytes=self.config.max_render_mb * 2**20)
        self.workers = [Worker(d, self.queue, self.ctx, events_endpoint, factory, worker_stop,
                               budget=self.budget)
                        for d in self.devices]
        for w in self.workers:
            w.start()
        log.info("focuspull %s serving on %s (devices %s, roots %s, auth %s)", focuspull.__version__,
                 self.bound, ",".join(self.devices), list(map(str, self.policy.roots)) or "none",
                 "on (ZAP PLAIN + per-message token)" if self.config.token else "off")
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        next_beat = time.monotonic()
        try:
            while not self.stopping.is_set():
                ready = dict(poller.poll(_POLL_MS if not self.outbox else _FLUSH_POLL_MS))
                self._flush()
                if pull in ready:
                    self._forward_events(pull)
                if router in ready:
                    for _ in range(100):  # bounded, so worker events are not starved
                        try:
                            frames = router.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._handle(frames)
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.config.heartbeat_s
                    self._beat()
        finally:
            self._shutdown(pull, worker_stop)

    def _shutdown(self, pull: zmq.Socket, worker_stop: threading.Event) -> None:
        log.info("shutting down: cancelling %d queued job(s) and the running ones", len(self.queue))
        for job in self.queue.drain():
            self._finish_cancelled(job, "the server is shutting down")
        for w in self.workers:
            if w.current is not None:
                w.current.cancel.set()  # the pipeline abandons the frame; nothing partial is written
        worker_stop.set()
        deadline = time.monotonic() + 60.0
        for w in self.workers:
            w.join(max(0.0, deadline - time.monotonic()))
        self._forward_events(pull)  # let clients see their 'cancelled' errors
        self._flush()
        self.outbox.clear()  # clients that do not read are not waited for
        pull.close(linger=0)
        assert self.router is not None
        self.router.close(linger=1000)
        if self.authenticator is not None:
            self.authenticator.stop()
        log.info("server stopped")

    # -- plumbing ----------------------------------------------------------------------
    def _send(self, ident: bytes, frames: list, counted: int = 0, droppable: bool = False) -> None:
        """Send to a client in order; what ZeroMQ will not take now waits in its outbox.

        ``counted``: bytes this message holds in ``budget`` (released once it is sent or
        dropped).  ``droppable`` messages (heartbeats) are dropped rather than queued.
        """
        box = self.outbox.get(ident)
        if box:
            if not droppable:
                box.append((frames, counted))
            return
        if not self._try_send(ident, frames, counted) and not droppable:
            self.outbox[ident] = deque([(frames, counted)])

    def _try_send(self, ident: bytes, frames: list, counted: int) -> bool:
        """False when the client's pipe is full; True when sent, or dropped (client gone)."""
        assert self.router is not None
        try:
            self.router.send_multipart([ident, *frames], copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:  # the client went away; its jobs time out via heartbeats
            log.debug("cannot reach client %s: %s", who(ident), exc)
        if counted:
            self.budget.release(ident, counted)
        return True

    def _flush(self) -> None:
        for ident in list(self.outbox):
            box = self.outbox[ident]
            while box and self._try_send(ident, *box[0]):
                box.popleft()
            if not box:
                del self.outbox[ident]

    def _drop_outbox(self, ident: bytes) -> None:
        for _, counted in self.outbox.pop(ident, ()):
            if counted:
                self.budget.release(ident, counted)

    def _reply(self, ident: bytes, msg_type: str, fields: dict, arrays=()) -> None:
        self._send(ident, protocol.encode(msg_type, fields, arrays))

    def _forward_events(self, pull: zmq.Socket) -> None:
        while True:
            try:
                frames = pull.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._send(frames[0].bytes, frames[1:], counted=protocol.message_bytes(frames[1:]))

    def _beat(self) -> None:
        now = time.time()
        live: dict[bytes, list[Job]] = {}
        for job in self.jobs.values():
            if job.state not in FINISHED:
                live.setdefault(job.client, []).append(job)
        for client, jobs in live.items():
            silent = now - self.last_seen.get(client, now)
            if silent > self.config.client_timeout_s:
                log.warning("client %s silent for %.1f s: cancelling its %d job(s)",
                            who(client), silent, len(jobs))
                for job in jobs:
                    self._cancel(job, "the client stopped sending heartbeats")
                self._drop_outbox(client)  # nobody will read it; frees a paused worker
            else:
                self._send(client, protocol.encode("heartbeat", {}), droppable=True)
        # Forget clients with nothing live, and old finished jobs.
        for client in [c for c in self.last_seen if c not in live and now - self.last_seen[c] > 60]:
            del self.last_seen[client]
            self._drop_outbox(client)
        finished = [j for j in self.jobs.values() if j.state in FINISHED]
        for job in finished[:max(0, len(finished) - _HISTORY)]:
            del self.jobs[job.id]

    # -- messages ------------------------------------------------------------------------
    def _handle(self, frames: list) -> None:
        ident = frames[0].bytes
        req_id = None
        try:
            try:
                header = protocol.decode_header(frames[1], self.limits) if len(frames) > 1 else {}
                rid = header.get("id")
                req_id = rid if isinstance(rid, str) and len(rid) <= 128 else None
            except FocuspullError:
                pass  # decode() below raises the full error
            msg = protocol.decode(frames[1:], self.limits, expect=protocol.CLIENT_TYPES)
            check_token(self.config.token, msg.token)
            self.last_seen[ident] = time.time()  # only an authenticated message keeps jobs alive
            handler = getattr(self, f"_on_{msg.type}")
            reply = handler(ident, msg, frames)
            if reply is not None:
                self._reply(ident, reply[0], {"re": req_id, **reply[1]})
        except FocuspullError as exc:
            log.warning("refused a message from %s: %s", who(ident), exc)
            self._reply(ident, "error", {"re": req_id, **protocol.error_fields(exc)})
        except Exception as exc:  # a bug must not take the server down
            log.exception("error handling a message from %s", who(ident))
            self._reply(ident, "error", {"re": req_id, **protocol.error_fields(exc)})

    def _on_heartbeat(self, ident, msg, frames):
        return None

    def _on_ping(self, ident, msg, frames):
        return "pong", {"time": time.time()}

    def _on_hello(self, ident, msg, frames):
        # A worker still loading counts: its runner is the factory's; one that failed to load does not.
        live = [w for w in self.workers if w.load_error is None]
        stages, models = list(BASE_STAGES), []
        if live and self.runner_factory is PipelineRunner:
            pipeline_stages, models = offered()
            stages += pipeline_stages
        elif live:
            runners = [w.runner for w in live if w.runner is not None]
            models = sorted({m for r in runners if hasattr(r, "models") for m in r.models()})
            stages += sorted({s for r in runners if hasattr(r, "stages") for s in r.stages()})
        limits = {"max_message_bytes": self.limits.max_message_bytes,
                  "max_header_bytes": self.limits.max_header_bytes,
                  "max_arrays": self.limits.max_arrays, "max_frames": self.config.max_frames,
                  "max_queued": self.config.max_queued, "dtypes": list(protocol.DTYPES),
                  "heartbeat_s": self.config.heartbeat_s, "client_timeout_s": self.config.client_timeout_s}
        return "welcome", {"server": focuspull.__version__, "protocol": protocol.PROTOCOL_VERSION,
                           "devices": list(self.devices), "stages": stages, "models": models,
                           "limits": limits}

    def _on_status(self, ident, msg, frames):
        running = [j.id for j in self.jobs.values() if j.state == "running"]
        return "status_reply", {"uptime_s": time.time() - self.started, "queued": len(self.queue),
                                "running": running, "workers": describe(self.workers),
                                "clients": len(self.last_seen)}

    def _on_jobs(self, ident, msg, frames):
        return "jobs_reply", {"jobs": [j.summary() for j in self.jobs.values()]}

    def _on_cancel(self, ident, msg, frames):
        job = self.jobs.get(msg.fields["job"])
        if job is None:
            raise UnknownJob(f"no job {msg.fields['job']!r} on this server",
                             "list jobs with Client.jobs() / 'focuspull submit --jobs'")
        self._cancel(job, "cancelled by a client")
        return "cancelling", {"job": job.id, "state": job.state}

    def _cancel(self, job: Job, why: str) -> None:
        job.cancel.set()
        if job.state == QUEUED and self.queue.remove(job.id) is not None:
            self._finish_cancelled(job, why)
        # A running job sees the flag between frames; its worker sends the error.

    def _finish_cancelled(self, job: Job, why: str) -> None:
        job.state, job.finished = CANCELLED, time.time()
        job.release()
        self._reply(job.client, "error", {"job": job.id, **protocol.error_fields(
            Cancelled(f"job {job.id} was cancelled before it started: {why}", "nothing was written"))})

    def _on_submit(self, ident, msg, frames):
        key = (ident, msg.fields["id"])
        if key in self.recent_submits:  # a lazy-pirate retry of a submit that did arrive
            return "accepted", self.recent_submits[key]
        echo = bool(msg.fields.get("echo"))
        table = msg.fields.get("inband")
        inband = None
        if table is not None:
            inband = protocol.inband_frames(table, msg.arrays, max_frames=self.config.max_frames)
        elif msg.arrays:
            raise ProtocolError(f"submit carries {len(msg.arrays)} array frame(s) but no 'inband' table",
                                "describe in-band frames in 'inband'")
        if echo:
            if msg.fields["job"]:  # not validated, so not kept: it would sit in the job history
                raise ProtocolError("an echo submit carries a job map; echo jobs render nothing",
                                    "send 'job': {} with echo: true")
            spec: Any = {}
        else:
            from focuspull.spec.job import RenderJob  # no torch

            try:
                spec = RenderJob.from_dict(msg.fields["job"])
            except FocuspullError:
                raise
            except Exception as exc:  # numbers the spec let through but could not handle: bad input
                log.warning("job spec raised %s", type(exc).__name__, exc_info=True)
                raise JobSpecError(f"the job cannot be read: {type(exc).__name__}: {str(exc)[:200]}",
                                   "check the job's numbers against focuspull.spec.fields") from None
            n_frames = len(spec.frames) or len(inband or ())
            if n_frames > self.config.max_frames:
                raise InputError(f"the job has {n_frames} frames; this server takes at most "
                                 f"{self.config.max_frames} per job",
                                 "split the shot into several jobs or raise --max-frames")
            if inband is not None and spec.input.pattern is not None:
                raise InputError("the job names input.pattern and also carries in-band frames",
                                 "send one or the other")
            spec = check_job_paths(spec, self.policy)
            if inband:
                rgba = next(iter(inband.values()))["rgba"]
                shape = getattr(rgba, "shape", ())
                if len(shape) == 3:
                    check_render_memory(shape[0], shape[1], shape[2], self.config.max_render_mb * 2**20)
        if inband:
            # Queued in-band frames stay in memory until their job runs: bound the total.
            held = sum(protocol.message_bytes(j.keepalive) for j in self.jobs.values()
                       if j.state == QUEUED and j.keepalive is not None)
            if held + protocol.message_bytes(frames) > self.config.max_queued_mb * 2**20:
                raise ServerBusy(f"queued jobs already hold {held / 2**20:.0f} MiB of in-band frames "
                                 f"(limit {self.config.max_queued_mb} MiB)",
                                 "retry when a job has finished, or raise --max-queued-mb")
        job = Job(client=ident, spec=spec, inband=inband, echo=echo,
                  keepalive=frames if inband else None, total=len(inband or ()))
        position = self.queue.put(job)
        self.jobs[job.id] = job
        accepted = {"job": job.id, "position": position}
        self.recent_submits[key] = accepted
        while len(self.recent_submits) > 1024:
            self.recent_submits.popitem(last=False)
        log.info("job %s queued for %s at position %d", job.id, who(ident), position)
        return "accepted", accepted
