"""The FocusPull node: knobs, Render / Cancel / server status / Send to farm, and ``nuke -t``.

Render, step by step (every Nuke call goes through :mod:`focuspull_nuke.host`):

1. on the main thread: the knobs become a job (:mod:`.mapping`), checked by the job spec
   before any pixel moves, so a bad knob is an error naming that knob;
2. the hidden Write renders the input (scene-linear 32-bit EXR with depth, the matte in
   ``mask.a``) into the cache; the job's hash with the input's pixel digests is the cache
   key (:mod:`.cache`); when every frame of that key is there, nothing else happens;
3. on a worker thread: the server renders the missing frames by path, or in-band when it
   cannot see the cache folder; a ProgressTask shows its progress events, and its Cancel
   (or the node's Cancel knob) cancels the server job from a watcher with its own socket;
4. back on the main thread (``executeInMainThread``): the group's Read shows the frames,
   or the status line shows the error in knob words.

The main thread waits only on bounded things (the Write, file hashing, a server check
with a timeout); server waits happen on the worker.  In ``nuke -t`` the same steps run in
order on one thread and :func:`render_batch` returns the ``focuspull`` command's exit codes.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from focuspull.client import Client
from focuspull.exr_lite import find_depth_channel, read_exr, write_exr
from focuspull.errors import (AuthError, Cancelled, FocuspullError, InputError, InternalError, JobSpecError,
                              ModelError, PathPolicyError, ServiceUnavailable)
from focuspull.spec.fields import translate
from focuspull.spec.job import RenderJob

from focuspull_nuke import NODE_CLASS, cache, host, settings as settings_mod
from focuspull_nuke.knobs import TABLE
from focuspull_nuke.mapping import job_from_knobs

EXTRA_KNOBS = ("status", "first_frame", "last_frame", "render", "cancel", "check_server", "send_to_farm", "fp_key")
_running: dict[str, threading.Event] = {}  # node name -> its Cancel flag, while a render runs
_CANCEL_POLL_S = 0.1
#: In-band frames per server job (fewer when the frames are big; see _inband_chunks).
INBAND_CHUNK_FRAMES = 4


# -- creating the node ------------------------------------------------------------------------
def create():
    """Create a FocusPull node (the menu command)."""
    node = host.create_group(NODE_CLASS)
    build_knobs(node)
    return node


def build_knobs(node, table=TABLE) -> None:
    first, last = host.root_range()
    host.add_tab(node, "focuspull", NODE_CLASS)
    host.add_text(node, "status", "status", "server not checked yet (press 'server status')")
    host.add_int(node, "first_frame", "frame range", first, "first frame to render")
    host.add_int(node, "last_frame", "", last, "last frame to render")
    host.add_button(node, "render", "Render", "import focuspull_nuke.node as n; n.on_render()",
                    "render the frame range on the focuspull server (frames of this knob state are reused)")
    host.add_button(node, "cancel", "Cancel", "import focuspull_nuke.node as n; n.on_cancel()",
                    "cancel this node's render on the server; finished frames stay")
    host.add_button(node, "check_server", "server status", "import focuspull_nuke.node as n; n.on_check_server()",
                    "ask the server whether it answers and which devices it has")
    host.add_button(node, "send_to_farm", "Send to farm", "import focuspull_nuke.node as n; n.on_send_to_farm()",
                    "write this range's job (JSON) for 'focuspull submit' on the farm")
    section = None
    for spec in table:
        if spec.section != section:
            section = spec.section
            host.add_text(node, f"section_{section or 'render'}", "", (section or "render").upper())
        if spec.enable:
            host.add_bool(node, spec.enable, f"use {spec.label.lower()}", False, f"switch {spec.name} on")
        host.add_knob(node, spec.cls, spec.name, spec.label, spec.tooltip, spec.default,
                      spec.minimum, spec.maximum, spec.choices)
    host.add_hidden_string(node, "fp_key")


class _Reader:
    def __init__(self, node) -> None:
        self.node = node

    def value(self, name):
        return host.knob_value(self.node, name)

    def curves(self, name):
        return host.knob_curves(self.node, name)


# -- the plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    name: str
    frames: list
    job: dict  # by-path job: input = the cache's input frames, output = the key's folder
    key: str
    missing: list
    settings: settings_mod.Settings
    baked: list = field(default_factory=list)

    @property
    def output_pattern(self) -> str:
        return self.job["output"]["pattern"]


def _frames(node) -> list[int]:
    first, last = int(host.knob_value(node, "first_frame")), int(host.knob_value(node, "last_frame"))
    if last < first:
        raise InputError(f"frame range {first}-{last} is empty (last_frame knob is before first_frame knob)",
                         "set the last_frame knob to the first_frame knob or later")
    return list(range(first, last + 1))


def knob_job(node) -> tuple[dict, list]:
    """The job the knobs describe (no input/output yet), checked against the job spec."""
    frames = _frames(node)
    job, baked = job_from_knobs(_Reader(node), frames, host.format_height(node))
    focus = job.setdefault("focus", {})
    if focus.get("mode") == "matte" and not focus.get("matte_channel"):
        if not host.input_connected(node, 1):
            raise JobSpecError("focus mode matte needs a focus matte: connect the matte input or name a channel "
                               "in 'focus.matte_channel'", "connect the matte input (its alpha is used)",
                               field="focus.matte_channel")
        focus["matte_channel"] = host.MATTE_CHANNEL
    return job, baked


def prepare(node, settings: settings_mod.Settings) -> Plan:
    """Main thread: knobs -> job, the input into the cache, the cache key, missing frames."""
    name = host.node_name(node)
    job, baked = knob_job(node)
    in_pattern = cache.input_pattern(settings.cache, name)
    job.setdefault("input", {})["pattern"] = in_pattern
    RenderJob.from_dict(job)  # a bad knob stops here, before any pixel is written
    os.makedirs(os.path.dirname(in_pattern), exist_ok=True)
    frames = job["frames"]
    with_matte = job.get("focus", {}).get("matte_channel") == host.MATTE_CHANNEL
    try:
        host.render_input(node, in_pattern, frames[0], frames[-1], with_matte)
    except RuntimeError as exc:  # what nuke.execute raises: a cancelled or failed render
        if "cancel" in str(exc).lower():
            raise Cancelled("rendering the node's input was cancelled", "press Render again") from None
        raise InputError(f"rendering the node's input for frames {frames[0]}-{frames[-1]} failed: {exc}",
                         "check that the img input is connected and has every frame of the range") from None
    digests = {}
    for f in frames:
        path = cache.frame_path(in_pattern, f)
        if not os.path.isfile(path):
            raise InputError(f"the hidden Write did not write frame {f} ({path})",
                             "check that the node's input has that frame and the cache folder is writable")
        digests[f] = cache.pixel_digest(path)
    key = cache.render_key(job, digests)
    out = cache.output_pattern(settings.cache, name, key)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    job.setdefault("output", {}).update(pattern=out, resume=True)
    return Plan(name, frames, job, key, cache.missing_frames(out, frames), settings, baked)


# -- talking to the server ------------------------------------------------------------------------
def _client(settings: settings_mod.Settings, timeout_s: float | None = None, retries: int = 1) -> Client:
    return Client(settings.endpoint, token=settings.token or None,
                  timeout_s=timeout_s or settings.timeout_s, retries=retries)


def _inband_frames(plan: Plan, frames) -> tuple[dict, dict]:
    """Pixels of ``frames`` from the cache's input EXRs: ({frame: arrays}, {frame: window})."""
    depth_name = plan.job.get("depth", {}).get("channel")
    table, windows = {}, {}
    for f in frames:
        path = cache.frame_path(plan.job["input"]["pattern"], f)
        img = read_exr(path, hint=cache.EXR_HINT)
        names = set(img.channels)
        depth = depth_name or find_depth_channel(names)
        if depth is None or depth not in names:
            raise InputError(f"no depth channel in the node's input (channels {', '.join(sorted(names))})",
                             "feed the node an image with depth (depth.Z), or name it in the z_channel knob")
        alpha = img.full_frame("A") if "A" in names else None
        rgba = np.stack([img.full_frame(c) for c in ("R", "G", "B")] +
                        ([alpha] if alpha is not None else []), axis=-1)
        table[f] = {"rgba": rgba, "depth": img.full_frame(depth)}
        windows[f] = img.display_window
    return table, windows


def _inband_job(plan: Plan, frames) -> dict:
    job = copy.deepcopy(plan.job)
    job["frames"] = list(frames)
    job["input"]["pattern"] = None
    job["output"].update(pattern=None, resume=False, preview=None)
    job.setdefault("depth", {})["channel"] = None
    return job


def _inband_chunks(plan: Plan, limit_bytes: int | None) -> list[list[int]]:
    """In-band results come back when a job ends, so the range goes in chunks (a cancel keeps
    the finished chunks, and no message outgrows the server's limit).  A temporal stage
    (stabilise, focus smoothing, tracking) sees only the frames of its job: then one job."""
    job = plan.job
    temporal = (job.get("depth", {}).get("stabilise_window") or job.get("focus", {}).get("smoothing_window")
                or job.get("focus", {}).get("track_from_frame") is not None)
    if temporal:
        return [list(plan.missing)]
    first = read_exr(cache.frame_path(job["input"]["pattern"], plan.missing[0]), hint=cache.EXR_HINT)
    dx0, dy0, dx1, dy1 = first.display_window
    frame_bytes = (dx1 - dx0 + 1) * (dy1 - dy0 + 1) * 5 * 4  # rgba + depth, float32
    size = max(1, min(INBAND_CHUNK_FRAMES, (limit_bytes or 2**31) // (2 * frame_bytes)))
    return [plan.missing[i:i + size] for i in range(0, len(plan.missing), size)]


def _write_result(plan: Plan, frame: int, pixels: np.ndarray, depth, window) -> None:
    names = ["R", "G", "B", "A"][:pixels.shape[2]]
    planes = {n: pixels[..., i] for i, n in enumerate(names)}
    if depth is not None and plan.job.get("output", {}).get("keep_depth", True):
        planes["depth.Z"] = depth
    write_exr(cache.frame_path(plan.output_pattern, frame), planes, compression="none",
              half=plan.job.get("output", {}).get("half", True), display_window=window)


@contextlib.contextmanager
def _cancel_watch(plan: Plan, job_id: str, progress, cancel: threading.Event):
    """While the block runs, a watcher polls the ProgressTask's Cancel (and the node's Cancel
    knob) and cancels the server job over its own socket (a socket belongs to one thread)."""
    stop = threading.Event()

    def watch():
        while not stop.wait(_CANCEL_POLL_S):
            if cancel.is_set() or progress.cancelled():
                cancel.set()
                try:
                    with _client(plan.settings, retries=0) as c:
                        c.cancel(job_id)
                except FocuspullError:
                    pass  # finished meanwhile, or the server is gone: the worker reports it
                return

    watcher = threading.Thread(target=watch, name=f"focuspull-cancel-{plan.name}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=5 * _CANCEL_POLL_S + plan.settings.timeout_s)


def _follow(plan: Plan, handle, progress, cancel, done_before: int = 0) -> None:
    """Progress events of one server job into the ProgressTask, until the job ends."""
    total = len(plan.missing)
    with _cancel_watch(plan, handle.id, progress, cancel):
        try:
            asked = False
            for event in handle:
                done = done_before + int(event["done"])
                progress.update(int(100 * done / max(1, total)), f"frame {event['frame']} ({done}/{total})")
                # Cancel seen here too, not only by the watcher's poll: a quick job must not
                # outrun the artist's Cancel.
                if not asked and (cancel.is_set() or progress.cancelled()):
                    cancel.set()
                    asked = True
                    try:
                        handle.cancel()
                    except FocuspullError:
                        pass  # finished meanwhile: the stream says so
        except KeyboardInterrupt:  # Ctrl-C in nuke -t: stop the server job too
            try:
                handle.cancel()
            except FocuspullError:
                pass
            raise


def run(plan: Plan, progress, cancel: threading.Event | None = None) -> list[int]:
    """Render ``plan.missing`` on the server; returns the frames rendered.  Any thread."""
    cancel = cancel or threading.Event()
    transfer = plan.settings.transfer
    with _client(plan.settings) as client:
        info = client.hello(f"nuke:{plan.name}")
        progress.update(0, f"{len(plan.missing)} frame(s) queued on {plan.settings.endpoint}")
        if transfer in ("auto", "path"):
            job = copy.deepcopy(plan.job)
            job["frames"] = list(plan.missing)
            try:
                handle = client.submit(job)
            except PathPolicyError:
                if transfer == "path":
                    raise
            else:
                _follow(plan, handle, progress, cancel)
                return sorted(handle.rendered or [])
        # The server cannot see the cache folder: the pixels travel in-band, chunk by chunk.
        rendered: list[int] = []
        for chunk in _inband_chunks(plan, info.get("limits", {}).get("max_message_bytes")):
            if cancel.is_set() or progress.cancelled():
                cancel.set()
                raise Cancelled("cancelled between chunks", "finished frames are in the cache")
            inband, windows = _inband_frames(plan, chunk)
            handle = client.submit(_inband_job(plan, chunk), inband=inband)
            _follow(plan, handle, progress, cancel, done_before=len(rendered))
            for f, pixels in handle.frames.items():  # a whole chunk, written frame by frame
                _write_result(plan, f, pixels, inband[f]["depth"], windows[f])
            rendered += handle.rendered or []
        return sorted(rendered)


# -- errors in knob words ----------------------------------------------------------------------------
def error_text(exc: BaseException, settings: settings_mod.Settings | None = None) -> str:
    """A server or job error said with knob names (``fstop knob``), plus what to do."""
    if not isinstance(exc, FocuspullError):
        return f"FocusPull failed: {type(exc).__name__}: {exc}"
    field_path = getattr(exc, "field", None)
    message = translate(exc.message, field_path, "nuke")
    hint = translate(exc.hint, field_path, "nuke")
    if isinstance(exc, (ServiceUnavailable, AuthError)):
        where = settings.endpoint if settings else "the endpoint"
        hint = (f"{hint}; the node uses {where} (FOCUSPULL_ENDPOINT / FOCUSPULL_TOKEN or "
                "FocusPull > Preferences)")
    return f"FocusPull: {message}" + (f"\n{hint}" if hint else "")


def _fail(node, exc: BaseException, settings=None) -> None:
    text = error_text(exc, settings)
    host.set_value(node, "status", "ERROR: " + text.replace("\n", " -- "))
    if host.is_gui():
        host.message(text)
    else:
        sys.stderr.write(text + "\n")


def _finish(node, plan: Plan, rendered: list, baked_note: bool = True) -> None:
    host.show_result(node, plan.output_pattern, plan.frames[0], plan.frames[-1])
    host.set_value(node, "fp_key", plan.key)
    reused = len(plan.frames) - len(plan.missing)
    text = f"{len(rendered)} frame(s) rendered, {reused} from the cache (key {plan.key})"
    if plan.baked and baked_note:
        text += f"; curves baked per frame: {', '.join(plan.baked)}"
    host.set_value(node, "status", text)


# -- knob commands ------------------------------------------------------------------------------------
def on_render(node=None):
    """The Render knob.  Returns the worker thread (None when nothing had to render)."""
    node = node or host.this_node()
    name = host.node_name(node)
    if name in _running:
        host.message(f"{name} is already rendering; press Cancel first")
        return None
    settings = None
    try:
        settings = settings_mod.load()
        plan = prepare(node, settings)
    except FocuspullError as exc:
        _fail(node, exc, settings)
        return None
    if not plan.missing:
        _finish(node, plan, [])
        return None
    cancel = threading.Event()
    _running[name] = cancel

    def work():
        progress = None
        try:
            progress = host.Progress(f"FocusPull {name}: frames {plan.frames[0]}-{plan.frames[-1]}")
            rendered = run(plan, progress, cancel)
            host.in_main_thread(_finish, node, plan, rendered)
        except Cancelled as exc:
            kept = len(plan.frames) - len(cache.missing_frames(plan.output_pattern, plan.frames))
            host.in_main_thread(_cancelled, node, plan, kept, exc)
        except Exception as exc:  # every failure reaches the node, never a silent thread death
            error = exc if isinstance(exc, FocuspullError) else InternalError(f"{type(exc).__name__}: {exc}")
            host.in_main_thread(_fail, node, error, settings)
        finally:
            if progress is not None:
                progress.close()
            _running.pop(name, None)

    thread = threading.Thread(target=work, name=f"focuspull-render-{name}", daemon=True)
    thread.start()
    return thread


def _cancelled(node, plan: Plan, kept: int, exc: Cancelled) -> None:
    host.show_result(node, plan.output_pattern, plan.frames[0], plan.frames[-1])
    host.set_value(node, "status", f"cancelled: {kept} of {len(plan.frames)} frame(s) complete in the cache")


def on_cancel(node=None) -> bool:
    """The Cancel knob: ask this node's running render to cancel its server job."""
    node = node or host.this_node()
    flag = _running.get(host.node_name(node))
    if flag is None:
        return False
    flag.set()
    return True


def server_status(settings: settings_mod.Settings, timeout_s: float = 3.0) -> str:
    """One line: does the server answer, and with which devices (bounded by ``timeout_s``)."""
    try:
        with _client(settings, timeout_s=timeout_s, retries=0) as c:
            info = c.hello("nuke")
    except FocuspullError as exc:
        return f"no server: {error_text(exc, settings).splitlines()[0].removeprefix('FocusPull: ')}"
    return (f"server {info.get('server', '?')} at {settings.endpoint}: devices {', '.join(info.get('devices', []))}"
            f"; stages {', '.join(info.get('stages', []))}")


def on_check_server(node=None) -> str:
    node = node or host.this_node()
    try:
        text = server_status(settings_mod.load())
    except FocuspullError as exc:
        text = "ERROR: " + error_text(exc)
    host.set_value(node, "status", text)
    return text


def send_to_farm(node, settings: settings_mod.Settings) -> str:
    """Render the input into the cache and write the range's job JSON for the farm."""
    plan = prepare(node, settings)
    folder = os.path.join(cache.node_dir(settings.cache, plan.name), "farm")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{plan.name}_{plan.frames[0]}-{plan.frames[-1]}_{plan.key}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(plan.job, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def on_send_to_farm(node=None):
    node = node or host.this_node()
    settings = None
    try:
        settings = settings_mod.load()
        path = send_to_farm(node, settings)
    except FocuspullError as exc:
        _fail(node, exc, settings)
        return None
    host.set_value(node, "status", f"farm job written: {path} (run: focuspull submit {path})")
    return path


def on_preferences():
    current = settings_mod.load()
    values = host.preferences_panel({"endpoint": current.endpoint, "token": current.token, "cache": current.cache,
                                     "transfer": current.transfer}, settings_mod.overridden(),
                                    settings_mod.TRANSFERS)
    if values is not None:
        return settings_mod.save_prefs(values)
    return None


# -- nuke -t -----------------------------------------------------------------------------------------------
class _TextProgress:
    def update(self, percent: int, text: str) -> None:
        sys.stderr.write(f"focuspull: {percent:3d}% {text}\n")

    def cancelled(self) -> bool:
        return False


def render_batch(node_name: str, first: int | None = None, last: int | None = None) -> int:
    """Render a FocusPull node's range in this process (``nuke -t``); the CLI's exit codes."""
    from focuspull.commands.outcome import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

    node = host.find_node(node_name)
    if node is None:
        sys.stderr.write(f"FocusPull: no node named {node_name!r} in the script\n")
        return EXIT_USAGE
    settings = None
    try:
        if first is not None:
            host.set_value(node, "first_frame", int(first))
        if last is not None:
            host.set_value(node, "last_frame", int(last))
        settings = settings_mod.load()
        plan = prepare(node, settings)
        rendered = run(plan, _TextProgress()) if plan.missing else []
        _finish(node, plan, rendered)
        sys.stderr.write(host.knob_value(node, "status") + "\n")
        return EXIT_OK
    except Cancelled as exc:
        sys.stderr.write(error_text(exc, settings) + "\n")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        sys.stderr.write("FocusPull: interrupted; finished frames are complete in the cache\n")
        return EXIT_INTERRUPTED
    except (InputError, ModelError, PathPolicyError) as exc:
        sys.stderr.write(error_text(exc, settings) + "\n")
        return EXIT_USAGE
    except FocuspullError as exc:
        sys.stderr.write(error_text(exc, settings) + "\n")
        return EXIT_FAILED
