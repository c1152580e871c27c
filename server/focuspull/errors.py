"""The one exception hierarchy of focuspull.

Every message says what went wrong *and what to do next*; ``hint`` carries the
second part separately so the server can send it as its own protocol field.
"""
from __future__ import annotations


class FocuspullError(Exception):
    """Base of every error focuspull raises on purpose."""

    code = "error"

    def __init__(self, message: str, hint: str = "", field: str | None = None) -> None:
        self.message = message
        self.hint = hint
        #: The job field at fault (``"aperture.blades"``), when there is one: front ends name it
        #: in their own words (focuspull.spec.fields.describe).
        self.field = field
        super().__init__(f"{message} — {hint}" if hint else message)


class InputError(FocuspullError):
    """A value the user passed is out of range or of the wrong kind."""

    code = "bad_input"


class DepthError(InputError):
    """The depth data cannot be turned into a circle of confusion as asked."""

    code = "bad_depth"


class LensError(InputError):
    """Lens or focus settings are physically impossible or inconsistent."""

    code = "bad_lens"


class SequenceError(InputError):
    """Frames, channels or files of a sequence are missing or inconsistent."""

    code = "bad_sequence"


class JobSpecError(InputError):
    """A job description has unknown, missing or mistyped fields."""

    code = "bad_job"


class ProtocolError(FocuspullError):
    """A message on the wire is malformed, too large or of an unknown version."""

    code = "bad_message"


class PathPolicyError(FocuspullError):
    """A path lies outside the roots the server may read or write."""

    code = "path_refused"


class ModelError(FocuspullError):
    """A model checkpoint is missing, incomplete or of the wrong kind."""

    code = "bad_model"


class Cancelled(FocuspullError):
    """The job was cancelled; the frame in progress was abandoned cleanly."""

    code = "cancelled"


# --- raised by the render server and client (focuspull.service, focuspull.client) ---

class AuthError(FocuspullError):
    """The message carried no token or the wrong one."""

    code = "unauthorized"


class ServerBusy(FocuspullError):
    """The server's job queue is full."""

    code = "busy"


class UnknownJob(FocuspullError):
    """A job id the server does not know (finished long ago, or never existed)."""

    code = "unknown_job"


class ServiceUnavailable(FocuspullError):
    """The server did not answer within the timeout (dead, unreachable, or restarting)."""

    code = "unavailable"


class InternalError(FocuspullError):
    """The server hit a bug; the message is the exception text."""

    code = "internal"
