"""Jobs as the server tracks them, and the fair queue the workers take them from.

Fairness: one FIFO per client (ZeroMQ routing identity), served round robin, so a
client that submits fifty jobs cannot starve one that submits a single job.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from focuspull.errors import ServerBusy

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = frozenset({DONE, FAILED, CANCELLED})


@dataclass(eq=False)
class Job:
    """One submitted job.  ``spec`` is a RenderJob (``{}`` for echo jobs, None once run)."""

    client: bytes
    spec: Any
    inband: dict | None = None
    echo: bool = False
    keepalive: Any = None  # the received zmq frames the in-band arrays are views of
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = QUEUED
    done: int = 0
    total: int = 0
    device: str | None = None
    submitted: float = field(default_factory=time.time)
    finished: float | None = None
    paused: bool = False  # waiting for its client to read results (backpressure)

    def summary(self) -> dict[str, Any]:
        """The job as the ``jobs_reply`` message lists it."""
        return {"job": self.id, "state": self.state, "done": self.done, "total": self.total,
                "device": self.device, "submitted": self.submitted, "paused": self.paused}

    def release(self) -> None:
        """Drop the input buffers once the job has run (they can be gigabytes)."""
        self.inband = None
        self.keepalive = None
        if self.echo:
            self.spec = None  # never validated: nothing of it outlives the run


class FairQueue:
    """Thread-safe round-robin queue of jobs keyed by client, bounded in total size."""

    def __init__(self, max_queued: int) -> None:
        self.max_queued = max_queued
        self._per_client: OrderedDict[bytes, deque[Job]] = OrderedDict()
        self._size = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return self._size

    def put(self, job: Job) -> int:
        """Queue ``job``; returns its position (0 = next).  ``ServerBusy`` when full."""
        with self._cond:
            if self._size >= self.max_queued:
                raise ServerBusy(f"the queue is full ({self.max_queued} jobs waiting)",
                                 "retry later, or start the server with a larger --max-queued")
            self._per_client.setdefault(job.client, deque()).append(job)
            self._size += 1
            self._cond.notify()
            return self._size - 1

    def get(self, timeout: float | None = None) -> Job | None:
        """The next job, taking clients in turn; None after ``timeout`` seconds."""
        with self._cond:
            if not self._size and not self._cond.wait_for(lambda: self._size > 0, timeout):
                return None
            client, jobs = next(iter(self._per_client.items()))
            job = jobs.popleft()
            # Rotate: this client goes to the back; drop it when it has nothing left.
            del self._per_client[client]
            if jobs:
                self._per_client[client] = jobs
            self._size -= 1
            return job

    def remove(self, job_id: str) -> Job | None:
        """Take a queued job out (for cancel); None when it is not queued."""
        with self._cond:
            for client, jobs in self._per_client.items():
                for job in jobs:
                    if job.id == job_id:
                        jobs.remove(job)
                        if not jobs:
                            del self._per_client[client]
                        self._size -= 1
                        return job
        return None

    def drain(self) -> list[Job]:
        """Remove and return every queued job (shutdown)."""
        with self._cond:
            out = [j for jobs in self._per_client.values() for j in jobs]
            self._per_client.clear()
            self._size = 0
            return out
