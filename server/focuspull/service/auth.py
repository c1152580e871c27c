"""Shared-token authentication, checked on every message when a token is configured."""
from __future__ import annotations

import hmac

from focuspull.errors import AuthError


def check_token(expected: str | None, given: str | None) -> None:
    """Raise AuthError unless ``given`` equals ``expected`` (no token configured = open).

    ``hmac.compare_digest`` takes the same time wherever the strings differ, so the
    token cannot be guessed a character at a time from reply latency.
    """
    if expected is None:
        return
    if given is None:
        raise AuthError("this server needs an auth token and the message carried none",
                        "pass token=... to Client (or set FOCUSPULL_TOKEN)")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise AuthError("wrong auth token", "use the token the server was started with")
