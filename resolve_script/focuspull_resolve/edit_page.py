"""Edit page script: depth of field on the timeline clip under the playhead.

The clip's frames: its own image sequence when it is one, else an EXR float sequence that
Resolve renders for exactly the clip's record range (a render job of ours, deleted after,
with the project's render format, codec and mode put back).  Depth: the clip's own Z channel
when its EXRs carry one, else the depth model named in the settings.  The result is imported
into the Media Pool and placed on the track above at the same record frames (a new track on
top when that one is taken over those frames).  Any failure or Cancel removes what the run
added (render job, media pool item, timeline item, new track, work folder).
"""
from __future__ import annotations

import os
from typing import Optional

from focuspull.spec.job import RenderJob

from focuspull_resolve import exr, settings
from focuspull_resolve.common import (TITLE, ask_settings, connect, field_error, make_workdir, remove_workdir,
                                      safe_name)
from focuspull_resolve.host import ResolveHost
from focuspull_resolve.jobs import JobRun, run_with_progress
from focuspull_resolve.sequences import Sequence, find_rendered, from_resolve_path

RENDER_DONE, RENDER_BAD = ("Complete",), ("Failed", "Cancelled")


class Failed(Exception):
    """A step failed; the message says what to do."""


def clip_source(info: dict) -> Optional[tuple[Sequence, list[int], bool]]:
    """The clip's own image sequence (frames used by the edit, has depth), or None."""
    found = from_resolve_path(info["file_path"])
    if found is None:
        return None
    seq, first, _last = found
    frames = [first + info["left_offset"] + i for i in range(info["duration"])]
    has_depth = False
    if seq.tail.lower().endswith(".exr") and os.path.exists(seq.path(frames[0])):
        try:
            has_depth = exr.find_depth_channel(exr.channel_names(seq.path(frames[0]))) is not None
        except (exr.ExrError, OSError):
            has_depth = False
    return seq, frames, has_depth


def with_depth_source(job: dict, has_depth: bool) -> dict:
    """No depth in the clip: the depth model; else the server's default (the Z channel)."""
    if has_depth:
        return job
    return {**job, "depth": {**job.get("depth", {}), "kind": "model"}}


def run(host: ResolveHost) -> str:
    item, why = host.current_clip()
    if item is None:
        host.ui.message(TITLE, f"Nothing to render: {why}.\n\nOpen the timeline on the Edit page, put the playhead "
                               "over the clip, then run Workspace > Scripts > Edit > focuspull again.")
        return "no clip"
    info = host.clip_info(item)
    own = clip_source(info)
    has_depth = bool(own and own[2])
    frames_hint = own[1] if own else list(range(info["duration"]))
    key = f"{settings.DATA_KEY}.{host.project_name()}"
    values = settings.load(host.load_data(key))
    errors: dict = {}
    general = ""

    def validate(job: dict) -> None:
        job = with_depth_source(job, has_depth)
        RenderJob.from_dict({**job, "input": {**job.get("input", {}), "pattern": "check.####.exr"},
                             "frames": frames_hint})

    depth_note = "clip's Z channel" if has_depth else "depth model"
    while True:
        values = ask_settings(host.ui, f"focuspull - {info['name']} (depth: {depth_note})", values, errors,
                              general, validate)
        if values is None:
            return "closed"
        errors, general = {}, ""
        if connect(host.ui, values[settings.SERVER_ROW]) is None:
            return "no server"
        outcome, exc = _render(host, info, own, has_depth, values)
        if outcome == "refused":
            k, text = settings.place_error(exc)
            errors[k] = text
            continue
        if outcome == "done":
            host.save_data(key, settings.dump(values))
        return outcome


def _render_clip(host: ResolveHost, info: dict, folder: str, name: str) -> tuple[Sequence, list[int]]:
    """Resolve renders the clip's record range to ``folder`` as EXR float."""
    codec = host.exr_float_codec()
    if codec is None:
        raise Failed("This Resolve offers no OpenEXR float render codec (Deliver page > Format EXR). "
                     "Render the clip to an EXR sequence yourself, import it, and run the script on it.")
    state = host.render_state()
    job = host.start_render(info["start"], info["start"] + info["duration"] - 1, folder, name, codec)
    if job is None:
        host.restore_render_state(state)
        raise Failed("Resolve refused the render job (render settings, or a render already running). "
                     "Wait for other renders to finish on the Deliver page, then run again.")
    result = {"status": ""}

    def tick():
        status, percent = host.render_status(job)
        result["status"] = status
        return f"Resolve renders the clip: {percent:.0f}% ({status})", status in RENDER_DONE + RENDER_BAD

    def cancel():
        result["cancelled"] = True
        host.stop_render()

    try:
        host.ui.progress(f"focuspull - rendering {info['name']}", tick, cancel)
    finally:
        host.delete_render_job(job)
        host.restore_render_state(state)
    if result.get("cancelled"):
        raise Failed("Cancelled. The timeline is unchanged.")
    found = find_rendered(folder, name)
    if result["status"] not in RENDER_DONE or found is None or len(found[1]) != info["duration"]:
        got = 0 if found is None else len(found[1])
        raise Failed(f"Resolve's render of the clip failed ({result['status'] or 'no status'}; {got} of "
                     f"{info['duration']} frames written to {folder}). Check the Deliver page's render "
                     "queue message and that the folder is writable (or set FOCUSPULL_WORK), then run again.")
    return found


def _render(host: ResolveHost, info: dict, own, has_depth: bool, values: dict):
    job = with_depth_source(settings.job_dict(values), has_depth)
    name = safe_name(info["name"])
    workdir = make_workdir(own[0].head if own else info["file_path"], name)
    added_media, placed, new_track = [], [], 0
    try:
        if own:
            source, frames = own[0], own[1]
        else:
            folder = os.path.join(workdir, "src")
            os.makedirs(folder)
            source, frames = _render_clip(host, info, folder, name + "_src")
        output = Sequence(os.path.join(workdir, "out", name + "_dof."), max(4, source.padding), ".exr")
        os.makedirs(os.path.dirname(output.head))
        run = run_with_progress(host.ui, f"focuspull - {info['name']}",
                                JobRun(values[settings.SERVER_ROW], job, source=source, frames=frames, output=output))
        if run.outcome == "cancelled":
            raise Failed("Cancelled. The timeline is unchanged.")
        if run.outcome != "done":
            if run.error is not None and field_error(run.error):
                remove_workdir(workdir)
                return "refused", run.error
            raise Failed(f"focuspull could not render {info['name']}:\n\n{settings.error_text(run.error)}")
        added_media = host.import_sequence(output.printf, frames[0], frames[-1])
        if not added_media:
            raise Failed(f"Resolve did not import the result {output.pattern}. Check the folder is readable.")
        start, end = info["start"], info["start"] + info["duration"]
        track = info["track"] + 1
        if track > host.video_track_count() or not host.track_is_free(track, start, end):
            new_track = host.add_video_track()
            if not new_track:
                raise Failed("Resolve would not add a video track for the result. Free the track above the "
                             "clip over its frames, then run again.")
            track = new_track
        placed = host.place(added_media[0], info["duration"], track, start)
        if not placed:
            raise Failed("Resolve would not place the result on the timeline. Unlock the track above the "
                         "clip, then run again.")
    except Failed as exc:
        _undo(host, placed, new_track, added_media, workdir)
        host.ui.message(TITLE, str(exc) + ("" if "unchanged" in str(exc) else "\n\nThe timeline is unchanged."))
        return ("cancelled" if str(exc).startswith("Cancelled") else "failed"), None
    except BaseException:
        _undo(host, placed, new_track, added_media, workdir)
        raise
    if not own:
        remove_workdir(os.path.join(workdir, "src"))
    return "done", None


def _undo(host: ResolveHost, placed, new_track: int, media, workdir: str) -> None:
    if placed:
        host.delete_timeline_items(placed)
    if new_track:
        host.delete_video_track(new_track)
    if media:
        host.delete_media(media)
    remove_workdir(workdir)


def main(resolve, bmd) -> Optional[str]:
    if resolve is None:
        return None
    return run(ResolveHost(resolve, bmd))
