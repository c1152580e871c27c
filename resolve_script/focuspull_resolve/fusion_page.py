"""Fusion page / Fusion Studio Comp script: depth of field on the selected tool.

Saver after the tool (EXR float, Z when the depth comes from the stream) -> render the comp's
range -> job to the server (by path, in-band when it cannot see the folder) -> progress with
Cancel -> Loader with the result, taking over everything the tool fed.  A failure or Cancel
leaves the comp as it was (the Saver, the Loader and the work folder are removed).
"""
from __future__ import annotations

import os
from typing import Optional

from focuspull.spec.job import RenderJob

from focuspull_resolve import settings
from focuspull_resolve.common import (TITLE, ask_settings, connect, field_error, make_workdir, remove_workdir,
                                      safe_name)
from focuspull_resolve.host import FusionHost
from focuspull_resolve.jobs import JobRun, run_with_progress
from focuspull_resolve.sequences import Sequence


def run(host: FusionHost) -> str:
    """The whole script; returns what happened (``done``, ``cancelled``, ``failed``, ...)."""
    tool = host.selected_tool()
    if tool is None:
        host.ui.message(TITLE, "No tool is selected.\n\nClick the tool whose image should get depth of field "
                               "in the Node editor, then run Workspace > Scripts > Comp > focuspull again.")
        return "no tool"
    name = host.tool_name(tool)
    start, end = host.render_range()
    frames = list(range(start, end + 1))
    values = settings.load(host.load_data(settings.DATA_KEY))
    errors: dict = {}
    general = ""

    def validate(job: dict) -> None:
        RenderJob.from_dict({**job, "input": {**job.get("input", {}), "pattern": "check.####.exr"},
                             "frames": frames})

    while True:
        values = ask_settings(host.ui, f"focuspull - {name} ({start}-{end})", values, errors, general, validate)
        if values is None:
            return "closed"
        errors, general = {}, ""
        endpoint = values[settings.SERVER_ROW]
        if connect(host.ui, endpoint) is None:
            return "no server"
        outcome, exc = _render(host, tool, name, frames, values)
        if outcome == "refused":  # the server named a field: show it there and ask again
            key, text = settings.place_error(exc)
            errors[key] = text
            continue
        return outcome


def _render(host: FusionHost, tool, name: str, frames: list[int], values: dict):
    job = settings.job_dict(values)
    endpoint = values[settings.SERVER_ROW]
    workdir = make_workdir(host.comp_file(), name)
    base = safe_name(name)
    source = Sequence(os.path.join(workdir, "src", base + "."), 4, ".exr")
    output = Sequence(os.path.join(workdir, "out", base + "_dof."), 4, ".exr")
    os.makedirs(os.path.dirname(source.head))
    os.makedirs(os.path.dirname(output.head))
    with_depth = job.get("depth", {}).get("kind", "channel") == "channel"

    saver = host.add_saver(tool, source.fusion_clip(), z_enabled=with_depth)
    try:
        rendered = host.render_saver(saver, frames[0], frames[-1])
    finally:
        host.delete_tool(saver)
    missing = [f for f in frames if not os.path.exists(source.path(f))]
    if not rendered or missing:
        remove_workdir(workdir)
        host.ui.message(TITLE, f"Fusion could not render {name} to {os.path.dirname(source.head)} "
                               f"({len(missing)} of {len(frames)} frames missing).\n\n"
                               "Check that the tool renders over the comp's render range and that the folder "
                               "is writable (or set FOCUSPULL_WORK to another folder), then run again. "
                               "The comp is unchanged.")
        return "failed", None

    run = run_with_progress(host.ui, f"focuspull - {name}",
                            JobRun(endpoint, job, source=source, frames=frames, output=output))
    if run.outcome == "done":
        missing = [f for f in frames if not os.path.exists(output.path(f))]
        if missing:
            run.outcome, run.error = "failed", RuntimeError(f"{len(missing)} result frames are missing")
    if run.outcome != "done":
        remove_workdir(workdir)
        if run.outcome == "cancelled":
            host.ui.message(TITLE, "Cancelled. The comp is unchanged.")
            return "cancelled", None
        if run.error is not None and field_error(run.error):
            return "refused", run.error
        host.ui.message(TITLE, f"focuspull could not render {name}:\n\n{settings.error_text(run.error)}\n\n"
                               "The comp is unchanged.")
        return "failed", run.error

    remove_workdir(os.path.dirname(source.head))  # the Saver's frames were only the job's input
    try:
        host.add_loader(tool, output.path(frames[0]), frames[0], frames[-1])
    except Exception as exc:  # noqa: BLE001 - the adapter has undone its part; tell the user
        remove_workdir(workdir)
        host.ui.message(TITLE, f"Fusion would not add the Loader for the result ({exc}). The comp is unchanged.")
        return "failed", exc
    host.save_data(settings.DATA_KEY, settings.dump(values))
    return "done", None


def main(fusion, comp, bmd) -> Optional[str]:
    if comp is None:
        return None
    return run(FusionHost(fusion, comp, bmd))
