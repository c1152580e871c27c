"""Client of the focuspull render server, for host Pythons (Nuke, Resolve, farm scripts).

Imports only pyzmq, msgpack and numpy (never torch).  Request/reply calls follow the
"lazy pirate" pattern of the ZeroMQ guide: send, poll with a timeout, and on silence
resend, a bounded number of times.  Any message from the server proves it is alive and
restarts the wait (a big in-band result stream can be ahead of the reply).  With no job
running the socket is closed and reopened before a resend; while jobs run it is kept, so
their results are not dropped.  The routing identity is kept across reconnects (the
server hands the connection over), and a retried request carries the same request id,
so the server does not queue a submit twice.

With a token, the client authenticates in the ZeroMQ handshake (PLAIN, user
``focuspull``, password = the token) and also sends the token with every message; a
refused handshake raises ``AuthError``.

Typical use::

    with Client("tcp://127.0.0.1:5690") as c:
        handle = c.submit(job_dict, inband={1001: {"rgba": img, "depth": z}})
        for event in handle:               # progress events; keeps the job alive
            print(event["done"], "/", event["total"])
        frames = handle.result()           # {1001: H x W x C float32} for in-band jobs

A ``Client`` (one ZeroMQ socket) belongs to one thread.  Keep reading a job's events
(iterate or call ``result()``): the client's heartbeats are what tell the server it is
still wanted; a client silent for the server's ``client_timeout_s`` has its jobs cancelled.
"""
from __future__ import annotations

import os
import time
import uuid
from collections import deque
from typing import Any, Iterator, Mapping

import numpy as np
import zmq

from focuspull import protocol
from focuspull.errors import AuthError, ProtocolError, ServiceUnavailable
from focuspull.protocol import Message

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5690"
# The server is trusted more than its clients, but a client still bounds what it accepts.
_CLIENT_LIMITS = protocol.Limits(max_message_bytes=64 * 2**30, max_items=1_000_000)
ZAP_USER = b"focuspull"  # PLAIN user name the server expects; the password is the token
# A refused handshake is reported as FAILED_AUTH (ZAP said no) or FAILED_PROTOCOL (mechanism
# mismatch: a token on one side only), but the refusing side closes at once, and when its close
# overtakes its greeting the client sees only FAILED_NO_DETAIL (measured: 5 of 6 connections of
# a token-less client to a token server); the next reconnect may race the same way.
_HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)
# Handshakes refused in a row (ZeroMQ reconnects every ~0.1 s) that make it a refusal: a healthy
# server never refuses one, and a token-less client waited 35-50 s for the cause otherwise.
_REFUSALS = 3


class JobHandle:
    """A submitted job: iterate for progress events, then ``result()``."""

    def __init__(self, client: "Client", job_id: str, position: int) -> None:
        self.client = client
        self.id = job_id
        self.position = position
        self.frames: dict[int, np.ndarray] = {}  # in-band results as they arrive
        self.rendered: list[int] | None = None  # frames rendered, once the job is done
        self.skipped: list[int] = []  # frames output.resume found complete and kept
        self.elapsed_s: float | None = None
        self._error: Exception | None = None

    @property
    def is_finished(self) -> bool:
        return self.rendered is not None or self._error is not None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Progress events (``{"type": "frame", "frame", "done", "total", "fps", "eta_s",
        "path"}``) until the job ends; raises the job's error if it fails or is cancelled."""
        while not self.is_finished:
            msg = self.client._next_for_job(self.id)
            if msg.type == "progress":
                yield {"type": "frame", **{k: v for k, v in msg.fields.items() if k != "job"}}
            elif msg.type == "result":
                if len(msg.arrays) != 1:
                    raise ProtocolError(f"a 'result' message carried {len(msg.arrays)} arrays, not 1",
                                        "client and server disagree on the protocol; upgrade both")
                # Arrays are views of the received frames: no copy of big images.
                self.frames[msg.fields["frame"]] = msg.arrays[0]
            elif msg.type == "done":
                self.rendered = list(msg.fields["rendered"])
                self.skipped = list(msg.fields["skipped"])
                self.elapsed_s = msg.fields["elapsed_s"]
            elif msg.type == "error":
                self._error = protocol.error_from_fields(msg.fields)
        if self._error is not None:
            raise self._error

    def result(self) -> dict[int, np.ndarray]:
        """Wait for the end; the in-band output frames ({} when written to disk)."""
        for _ in self:
            pass
        return self.frames

    def cancel(self) -> str:
        """Ask the server to cancel; returns the job state it reported.  Keep iterating
        (or call ``result()``) to see the job end with ``errors.Cancelled``."""
        return self.client._request("cancel", {"job": self.id}).fields["state"]


class Client:
    """Talks to one server endpoint.  See the module docstring."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, token: str | None = None, *,
                 timeout_s: float = 5.0, retries: int = 2, heartbeat_s: float = 1.0,
                 context: zmq.Context | None = None) -> None:
        if timeout_s <= 0 or retries < 0:
            raise ValueError("timeout_s must be > 0 and retries >= 0")
        self.endpoint = endpoint
        self.token = token if token is not None else (os.environ.get("FOCUSPULL_TOKEN") or None)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.heartbeat_s = float(heartbeat_s)
        self.server_info: dict[str, Any] | None = None
        self._ctx = context or zmq.Context.instance()
        self._identity = b"fp-" + uuid.uuid4().bytes
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None  # handshake failures (auth) of _socket
        self._refused = 0  # handshakes that failed without a cause, and none succeeded since
        self._inbox: dict[str, deque[Message]] = {}  # job id -> messages not yet consumed
        self._live: set[str] = set()  # jobs submitted here whose end has not been read yet
        self._last_sent = 0.0
        self._connect()

    # -- socket lifecycle ------------------------------------------------------------------
    def _connect(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, self._identity)
        sock.setsockopt(zmq.LINGER, 0)  # a dead server must not block close()
        # A refused handshake can leave the DEALER with no pipe, and a send then blocks.
        sock.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_s * 1000)))
        if self.token is not None:
            sock.plain_username = ZAP_USER
            sock.plain_password = self.token.encode()
        self._monitor = sock.get_monitor_socket(_HANDSHAKE_EVENTS)
        sock.connect(self.endpoint)
        self._socket = sock

    def _disconnect(self) -> None:
        if self._socket is not None:
            if self._monitor is not None:
                self._socket.disable_monitor()
                self._monitor.close(linger=0)
                self._monitor = None
            self._socket.close(linger=0)
            self._socket = None

    def _reconnect(self) -> None:
        self._disconnect()
        self._connect()

    def close(self) -> None:
        self._disconnect()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- send / receive ----------------------------------------------------------------------
    def _send(self, msg_type: str, fields: Mapping[str, Any], arrays=()) -> None:
        if self._socket is None:
            raise ProtocolError("the client is closed", "create a new Client")
        frames = protocol.encode(msg_type, fields, arrays, token=self.token)
        limit = (self.server_info or {}).get("limits", {}).get("max_message_bytes")
        size = protocol.message_bytes(frames)
        if limit is not None and size > limit:
            raise ProtocolError(f"message of {size} bytes exceeds the server limit of {limit}",
                                "send fewer or smaller frames per job, or raise --max-message-mb on the server")
        try:
            self._socket.send_multipart(frames, copy=False)
        except zmq.Again:
            self._check_handshake()  # AuthError when the server refused the connection
            raise self._unanswered(f"cannot send to {self.endpoint}: no connection for {self.timeout_s:g} s") from None
        self._last_sent = time.monotonic()

    def _recv(self, timeout_s: float) -> Message | None:
        assert self._socket is not None
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:  # a handshake event that raises nothing does not end the wait
            ready = dict(poller.poll(max(0, int((deadline - time.monotonic()) * 1000))))
            if self._monitor is not None and self._monitor in ready:
                self._check_handshake()
            if self._socket in ready:
                break
            if time.monotonic() >= deadline:
                return None
        frames = self._socket.recv_multipart(copy=False)
        return protocol.decode(frames, _CLIENT_LIMITS, expect=protocol.SERVER_TYPES)

    def _check_handshake(self) -> None:
        """Raise AuthError for a handshake the server refused (wrong or missing token)."""
        from zmq.utils.monitor import recv_monitor_message

        assert self._monitor is not None
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._refused = 0
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                self._refused += 1  # the cause may come with a reconnect, else after a few
                if self._refused >= _REFUSALS:
                    raise self._unanswered(f"{self._refused} connection handshakes with {self.endpoint} failed")
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise AuthError("wrong auth token (the server refused the connection)",
                                "use the token the server was started with")
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                if event["value"] != zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                    raise ProtocolError(f"the connection handshake with {self.endpoint} failed "
                                        f"(ZeroMQ protocol error {event['value']:#x})",
                                        "check that the endpoint is a focuspull server of the same version")
                if self.token is None:
                    raise AuthError("this server needs an auth token and the connection carried none",
                                    "pass token=... to Client (or set FOCUSPULL_TOKEN)")
                raise AuthError("this server takes no auth token but the client sends one",
                                "drop the token (token=None, unset FOCUSPULL_TOKEN), or start the "
                                "server with --token / FOCUSPULL_TOKEN")

    def _stash(self, msg: Message) -> None:
        job = msg.fields.get("job")
        if job is not None and msg.type in ("progress", "result", "done", "error"):
            self._inbox.setdefault(job, deque()).append(msg)
        # heartbeats and stale replies to earlier (retried) requests are dropped

    def _request(self, msg_type: str, fields: Mapping[str, Any], arrays=()) -> Message:
        """Lazy pirate: send, wait ``timeout_s`` of silence, resend up to ``retries`` times.

        Every message from the server but a heartbeat restarts the wait: the reply may be
        queued behind a large result stream.  Heartbeats do not, or a lost request would
        wait for ever.  With no live job the socket is reopened before a resend (a fresh
        connection); with live jobs it is kept so their queued results are not dropped.
        """
        req_id = uuid.uuid4().hex
        self._refused = 0
        for attempt in range(self.retries + 1):
            if attempt and not self._live:
                self._reconnect()
            self._send(msg_type, {"id": req_id, **fields}, arrays)
            deadline = time.monotonic() + self.timeout_s
            while True:
                msg = self._recv(deadline - time.monotonic())
                if msg is None:
                    break
                if msg.type != "heartbeat":
                    deadline = time.monotonic() + self.timeout_s  # the server is alive and talking
                if msg.fields.get("re") == req_id:
                    if msg.type == "error":
                        raise protocol.error_from_fields(msg.fields)
                    return msg
                if msg.type == "error" and msg.fields.get("re") is None and msg.fields.get("job") is None:
                    # The server could not read the request far enough to find its id
                    # (e.g. a list longer than the msgpack item limit): it is our answer.
                    raise protocol.error_from_fields(msg.fields)
                self._stash(msg)
        if not self._live:
            self._reconnect()  # leave a fresh socket for the next call
        raise self._unanswered(f"no answer from {self.endpoint} to '{msg_type}' after {self.retries + 1} "
                               f"attempt(s) of {self.timeout_s:g} s")

    def _unanswered(self, what: str) -> Exception:
        """The error for a request that got no answer: AuthError when the server refused every
        connection handshake (a token on one side only, or a wrong one), else ServiceUnavailable."""
        if self._refused:
            if self.token is None:
                return AuthError(f"{what}: the server refused the connection; it needs an auth token and "
                                 "the connection carried none", "pass token=... to Client (or set FOCUSPULL_TOKEN)")
            return AuthError(f"{what}: the server refused the connection; a wrong auth token, or the server "
                             "takes no auth token but the client sends one",
                             "use the token the server was started with, or none if it was started without")
        return ServiceUnavailable(what, "check that 'focuspull serve' is running there (and the token matches)")

    def _next_for_job(self, job_id: str) -> Message:
        """The next message of a job, heartbeating; ServiceUnavailable on a silent server."""
        box = self._inbox.setdefault(job_id, deque())
        last_heard = time.monotonic()
        while not box:
            now = time.monotonic()
            if now - self._last_sent >= self.heartbeat_s:
                self._send("heartbeat", {})
            if now - last_heard > self.timeout_s:
                self._inbox.pop(job_id, None)
                self._live.discard(job_id)
                raise ServiceUnavailable(
                    f"the server at {self.endpoint} went silent for {self.timeout_s:g} s while "
                    f"running job {job_id}",
                    "the server probably died; restart it and resubmit (with output.resume "
                    "to keep finished frames)")
            # Wake for whichever comes first: the next heartbeat to send, or the deadline.
            wait = min(self.heartbeat_s - (now - self._last_sent), self.timeout_s - (now - last_heard))
            msg = self._recv(max(wait, 0.01))
            if msg is not None:
                last_heard = time.monotonic()
                self._stash(msg)
        msg = box.popleft()
        if msg.type in ("done", "error"):
            self._inbox.pop(job_id, None)
            self._live.discard(job_id)
        return msg

    # -- API ------------------------------------------------------------------------------------
    def hello(self, name: str | None = None) -> dict[str, Any]:
        """Server capabilities: version, protocol, devices, stages, models, limits."""
        msg = self._request("hello", {"client": name} if name else {})
        self.server_info = dict(msg.fields)
        self.server_info.pop("re", None)
        return self.server_info

    def ping(self) -> float:
        """Round-trip time in seconds."""
        t0 = time.perf_counter()
        self._request("ping", {})
        return time.perf_counter() - t0

    def status(self) -> dict[str, Any]:
        msg = self._request("status", {})
        return {k: v for k, v in msg.fields.items() if k != "re"}

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._request("jobs", {}).fields["jobs"])

    def cancel(self, job_id: str) -> str:
        return self._request("cancel", {"job": job_id}).fields["state"]

    def submit(self, job: Mapping[str, Any], inband: Mapping[int, Mapping[str, np.ndarray]] | None = None,
               *, echo: bool = False) -> JobHandle:
        """Queue a job (a RenderJob dict); ``inband`` = ``{frame: {"rgba", "depth"}}`` arrays
        (``depth`` may be left out when a depth model makes it).

        ``echo`` asks the server to send the in-band images straight back without
        rendering (transport measurements); ``job`` is then not sent (the protocol wants
        ``{}``).  Raises the server's error (JobSpecError, PathPolicyError, ServerBusy, ...)
        if it refuses the job.
        """
        if self.server_info is None:
            self.hello()  # learn the limits before sending gigabytes
        fields: dict[str, Any] = {"job": {} if echo else dict(job)}
        arrays: list[np.ndarray] = []
        if inband is not None:
            fields["inband"], arrays = protocol.inband_table(inband)
        if echo:
            fields["echo"] = True
        msg = self._request("submit", fields, arrays)
        self._live.add(msg.fields["job"])
        return JobHandle(self, msg.fields["job"], msg.fields["position"])


__all__ = ["Client", "JobHandle", "DEFAULT_ENDPOINT"]
