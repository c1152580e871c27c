"""The focuspull render server: ZeroMQ ROUTER front end, fair job queue, one worker per device.

Modules: ``config`` (frozen ServerConfig, option registry), ``paths`` (path policy),
``auth`` (token check), ``jobs`` (job records, fair queue), ``worker`` (device threads),
``server`` (the socket loop).  Nothing here imports torch at import time.
"""
from __future__ import annotations

from focuspull.service.config import ServerConfig, resolve

__all__ = ["ServerConfig", "resolve"]
