"""The ONE adapter between focuspull and DaVinci Resolve / Fusion: every host API call is here.

Everything else in ``focuspull_resolve`` is plain Python over what these methods return, so
the tests drive this module with a recording stand-in of exactly the calls below
(tests/resolve_script/fake_resolve.py) and everything behind it is real.

Where each call is documented
-----------------------------
R   = Resolve scripting README (Developer/Scripting/README.txt in the Resolve install; copy of
      the 16.2 text: ynput/OpenPype openpype/hosts/resolve/RESOLVE_API_README_v16.2.0_up.txt,
      newer text: socratica/davinci-resolve docs/resolve-python-api.md)
F   = Fusion 8 Scripting Guide (Composition, Tool, Input/Output chapters); VFXPedia
      "Composition/Render"; Saver/Loader inputs as set by aturtur/fusion-scripts
      AR_Scripts_Fusion/Comp/AR_CreateSaver.py and ynput/OpenPype
      openpype/hosts/fusion/plugins/load/load_sequence.py
UI  = Fusion UI Manager (Fusion 9+ "UI Manager" examples in the install's Scripts folder;
      bmd.UIDispatcher, AddWindow, Find, On.<ID>.<Event>, RunLoop/ExitLoop, ui:Timer)

=========================================== ======== =========================================
call                                        doc      used for
=========================================== ======== =========================================
resolve / app.GetResolve() / bmd.scriptapp R        the Resolve object of a menu script
Resolve.GetProjectManager()                 R        project
Resolve.Fusion()                            R        UI Manager + app data on the Edit page
ProjectManager.GetCurrentProject()          R        project
Project.GetName()                           R        key of the remembered Edit settings
Project.GetCurrentTimeline()                R        timeline
Project.GetMediaPool()                      R        import the result
Project.GetRenderFormats()/GetRenderCodecs  R        find the EXR float codec
Project.GetCurrentRenderFormatAndCodec()    R        restored after our render
Project.SetCurrentRenderFormatAndCodec()    R        EXR float
Project.GetCurrentRenderMode()/Set...(1)    R        single clip; restored after
Project.SetRenderSettings({...})            R        MarkIn/MarkOut = the clip, TargetDir, CustomName
Project.AddRenderJob()/DeleteRenderJob(id)  R        our job only; removed afterwards
Project.StartRendering([id], False)         R        render it
Project.GetRenderJobStatus(id)              R        JobStatus / CompletionPercentage
Project.StopRendering()                     R        Cancel
Timeline.GetCurrentVideoItem()              R        the clip under the playhead
Timeline.GetTrackCount("video")             R        is there a track above
Timeline.GetItemListInTrack("video", i)     R        is it free over the clip's frames
Timeline.AddTrack("video")/DeleteTrack      R        a new track on top when needed; undone on failure
Timeline.DeleteClips([items])               R        undo the placement on failure
TimelineItem.GetName/GetStart/GetEnd/GetDuration R  record ranges (clip, items on a track)
TimelineItem.GetLeftOffset()                R        first source frame used
TimelineItem.GetTrackTypeAndIndex()         R        its track
TimelineItem.GetMediaPoolItem()             R        its source
MediaPoolItem.GetClipProperty("File Path")  R        image sequence or not
MediaPool.ImportMedia([{FilePath,..Index}]) R        the result sequence
MediaPool.AppendToTimeline([{clipInfo}])    R        trackIndex + recordFrame placement
MediaPool.DeleteClips([items])              R        undo the import on failure
Fusion.GetData/SetData(key, value)          F        Edit-page settings
Composition.GetToolList(True)               F        the selected tool
Composition.GetAttrs()                      F        COMPN_RenderStart/End, COMPS_FileName
Composition.GetData/SetData(key, value)     F        settings remembered per comp
Composition.Lock()/Unlock()                 F        no dialogs while tools are added
Composition.StartUndo(name)/EndUndo(True)   F        one undo step per change
Composition.AddTool("Saver"|"Loader", x, y) F        the round trip
Composition.CurrentFrame.FlowView           F        GetPosTable(tool): place tools beside it
Composition.Render({Start, End, Tool, Wait})F        render our Saver only, wait
Tool.GetAttrs()["TOOLS_Name"]               F        names
Tool.SetInput(id, value)                    F        Clip, OutputFormat, OpenEXRFormat.*, GlobalIn/Out
Tool.ConnectInput("Input", tool)            F        Saver after the tool
Tool.Output.GetConnectedInputs()            F        what reads the tool (moved to the Loader)
Input.ConnectTo(output)                     F        rewire / undo the rewire
Input.GetTool()                             F        skip our own Saver
Tool.Delete()                               F        remove what a failed run added
Fusion.UIManager, bmd.UIDispatcher(ui)      UI       windows
ui.VGroup/HGroup/Label/LineEdit/SpinBox/    UI       the generated settings window
  DoubleSpinBox/CheckBox/ComboBox/Button
ui.Timer({ID, Interval}), .Start()/.Stop()  UI       progress polling without blocking the UI
disp.AddWindow(props, layout), win.Find(ID) UI       windows and their widgets
win.On.<ID>.Clicked/Close/Timeout           UI       events
ComboBox.AddItems([..]), .CurrentText       UI       choices
win.Show()/Hide(), disp.RunLoop/ExitLoop    UI       modal loops
=========================================== ======== =========================================

Saver EXR inputs (AR_CreateSaver): ``OpenEXRFormat.Depth`` 1 = half, 2 = float;
``OpenEXRFormat.Compression`` 0 none, 2 ZIP (1 line), 3 ZIP (16 lines); ``*Enable`` 0/1.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

SAVER_DEPTH_FLOAT = 2
SAVER_COMPRESSION_ZIP = 3
UNDO_NAME = "focuspull"


class UI:
    """UI Manager windows: a message, the generated settings form, a progress window."""

    def __init__(self, fusion, bmd) -> None:
        self.ui = fusion.UIManager
        self.disp = bmd.UIDispatcher(self.ui)

    def _modal(self, win) -> None:
        win.Show()
        self.disp.RunLoop()
        win.Hide()

    def message(self, title: str, text: str) -> None:
        ui = self.ui
        win = self.disp.AddWindow(
            {"ID": "fpMessage", "WindowTitle": title, "Geometry": [200, 200, 520, 180]},
            ui.VGroup([ui.Label({"ID": "Text", "Text": text, "WordWrap": True}),
                       ui.HGroup({"Weight": 0}, [ui.Button({"ID": "OK", "Text": "OK"})])]))
        win.On.OK.Clicked = lambda ev: self.disp.ExitLoop()
        win.On.fpMessage.Close = lambda ev: self.disp.ExitLoop()
        self._modal(win)

    def form(self, title: str, rows: list[dict], general_error: str = "") -> Optional[dict[str, Any]]:
        """A form of ``rows`` (``id, label, widget, value, tooltip, error``, and ``choices`` /
        ``minimum`` / ``maximum`` / ``decimals``); returns ``{id: value}`` or None (Cancel)."""
        ui = self.ui
        make = {"text": ui.LineEdit, "int": ui.SpinBox, "float": ui.DoubleSpinBox,
                "bool": ui.CheckBox, "choice": ui.ComboBox}
        lines = [ui.Label({"ID": "GeneralError", "Text": general_error, "WordWrap": True,
                           "StyleSheet": "color: #ff6060;"})]
        for row in rows:
            props: dict[str, Any] = {"ID": row["id"], "ToolTip": row["tooltip"]}
            if row["widget"] == "text":
                props["Text"] = row["value"]
            elif row["widget"] == "bool":
                props["Checked"] = bool(row["value"])
                props["Text"] = ""
            elif row["widget"] in ("int", "float"):
                props.update(Minimum=row["minimum"], Maximum=row["maximum"], Value=row["value"])
                if row["widget"] == "float":
                    props["Decimals"] = row.get("decimals", 3)
            lines.append(ui.HGroup([
                ui.Label({"Text": row["label"], "ToolTip": row["tooltip"], "Weight": 0.3}),
                make[row["widget"]](props),
                ui.Label({"ID": "err_" + row["id"], "Text": row["error"], "WordWrap": True,
                          "StyleSheet": "color: #ff6060;", "Weight": 0.4})]))
        lines.append(ui.HGroup({"Weight": 0}, [ui.Button({"ID": "Render", "Text": "Render"}),
                                               ui.Button({"ID": "Cancel", "Text": "Cancel"})]))
        win = self.disp.AddWindow({"ID": "fpSettings", "WindowTitle": title,
                                   "Geometry": [150, 100, 760, 40 + 28 * len(rows)]}, ui.VGroup(lines))
        for row in rows:
            if row["widget"] == "choice":
                combo = win.Find(row["id"])
                combo.AddItems(list(row["choices"]))
                combo.CurrentIndex = list(row["choices"]).index(row["value"])
        answer: dict[str, Any] = {}

        def accept(ev):
            for row in rows:
                w = win.Find(row["id"])
                kind = row["widget"]
                answer[row["id"]] = (w.Text if kind == "text" else w.Checked if kind == "bool"
                                     else w.CurrentText if kind == "choice" else w.Value)
            self.disp.ExitLoop()

        win.On.Render.Clicked = accept
        win.On.Cancel.Clicked = lambda ev: self.disp.ExitLoop()
        win.On.fpSettings.Close = lambda ev: self.disp.ExitLoop()
        self._modal(win)
        return answer or None

    def progress(self, title: str, tick: Callable[[], tuple[str, bool]], on_cancel: Callable[[], None],
                 interval_ms: int = 100) -> None:
        """A window with a status line and Cancel; ``tick()`` runs every ``interval_ms`` from a
        UI timer and returns ``(status text, finished)``; the window closes when finished."""
        ui = self.ui
        win = self.disp.AddWindow(
            {"ID": "fpProgress", "WindowTitle": title, "Geometry": [250, 250, 480, 110]},
            ui.VGroup([ui.Label({"ID": "Status", "Text": "starting...", "WordWrap": True}),
                       ui.HGroup({"Weight": 0}, [ui.Button({"ID": "Cancel", "Text": "Cancel"})])]))
        timer = self.ui.Timer({"ID": "fpPoll", "Interval": interval_ms})
        status = win.Find("Status")
        cancel_button = win.Find("Cancel")

        def poll(ev):
            text, finished = tick()
            status.Text = text
            if finished:
                timer.Stop()
                self.disp.ExitLoop()

        def cancel(ev):
            cancel_button.Enabled = False
            status.Text = "cancelling..."
            on_cancel()

        win.On.fpPoll.Timeout = poll
        win.On.Cancel.Clicked = cancel
        win.On.fpProgress.Close = cancel
        timer.Start()
        self._modal(win)


class FusionHost:
    """The Fusion page (or Fusion Studio): one comp."""

    def __init__(self, fusion, comp, bmd) -> None:
        self.fusion = fusion
        self.comp = comp
        self.ui = UI(fusion, bmd)

    # -- reading the comp -------------------------------------------------------------------
    def selected_tool(self):
        tools = self.comp.GetToolList(True) or {}
        return next(iter(tools.values()), None)

    @staticmethod
    def tool_name(tool) -> str:
        return str(tool.GetAttrs()["TOOLS_Name"])

    def render_range(self) -> tuple[int, int]:
        attrs = self.comp.GetAttrs()
        return int(attrs["COMPN_RenderStart"]), int(attrs["COMPN_RenderEnd"])

    def comp_file(self) -> str:
        return str(self.comp.GetAttrs().get("COMPS_FileName") or "")

    def load_data(self, key: str):
        return self.comp.GetData(key)

    def save_data(self, key: str, value: str) -> None:
        self.comp.SetData(key, value)

    # -- changing the comp ------------------------------------------------------------------
    def _beside(self, tool, dx: int, dy: int) -> tuple[float, float]:
        pos = self.comp.CurrentFrame.FlowView.GetPosTable(tool)
        x, y = list(pos.values())[:2]
        return x + dx, y + dy

    def add_saver(self, tool, clip_path: str, *, z_enabled: bool):
        """A Saver reading ``tool``: EXR, 32-bit float, ZIP, RGBA (+ Z)."""
        self.comp.Lock()
        self.comp.StartUndo(UNDO_NAME)
        try:
            saver = self.comp.AddTool("Saver", *self._beside(tool, 1, 1))
            saver.ConnectInput("Input", tool)
            saver.SetInput("Clip", clip_path)
            saver.SetInput("OutputFormat", "OpenEXRFormat")
            saver.SetInput("OpenEXRFormat.Depth", SAVER_DEPTH_FLOAT)
            saver.SetInput("OpenEXRFormat.Compression", SAVER_COMPRESSION_ZIP)
            for channel in ("Red", "Green", "Blue", "Alpha"):
                saver.SetInput(f"OpenEXRFormat.{channel}Enable", 1)
            saver.SetInput("OpenEXRFormat.ZEnable", 1 if z_enabled else 0)
        finally:
            self.comp.EndUndo(True)
            self.comp.Unlock()
        return saver

    def render_saver(self, saver, start: int, end: int) -> bool:
        return bool(self.comp.Render({"Start": start, "End": end, "Tool": saver, "Wait": True}))

    def delete_tool(self, tool) -> None:
        tool.Delete()

    def add_loader(self, after, clip_path: str, start: int, end: int):
        """A Loader of ``clip_path`` (first frame) placed at ``start..end`` that takes over
        everything that read ``after``.  Returns ``(loader, moved inputs)``."""
        self.comp.Lock()
        self.comp.StartUndo(UNDO_NAME)
        loader, moved = None, []
        try:
            readers = list((after.Output.GetConnectedInputs() or {}).values())
            loader = self.comp.AddTool("Loader", *self._beside(after, 1, 0))
            loader.SetInput("Clip", clip_path)
            # GlobalIn may not pass GlobalOut: move the out point first (OpenPype loader_shift).
            loader.SetInput("GlobalOut", end)
            loader.SetInput("GlobalIn", start)
            for inp in readers:
                inp.ConnectTo(loader.Output)
                moved.append(inp)
        except BaseException:
            if loader is not None:
                self.undo_loader(loader, moved, after)
            raise
        finally:
            self.comp.EndUndo(True)
            self.comp.Unlock()
        return loader, readers

    def undo_loader(self, loader, moved: Iterable, after) -> None:
        for inp in moved:
            inp.ConnectTo(after.Output)
        loader.Delete()


def resolve_from_globals(scope: dict):
    """The Resolve object of a menu script: ``resolve`` (Resolve 17+), ``app.GetResolve()``,
    else ``bmd.scriptapp("Resolve")`` (R "Using a script"; external scripts use
    DaVinciResolveScript.scriptapp the same way)."""
    found = scope.get("resolve")
    if found is None and scope.get("app") is not None:
        found = scope["app"].GetResolve()
    if found is None and scope.get("bmd") is not None:
        found = scope["bmd"].scriptapp("Resolve")
    return found


class ResolveHost:
    """The Edit page: the current project, timeline and clip."""

    EXR = "exr"

    def __init__(self, resolve, bmd) -> None:
        self.resolve = resolve
        self.fusion = resolve.Fusion()
        self.ui = UI(self.fusion, bmd)
        self.project = None
        self.timeline = None

    # -- reading ------------------------------------------------------------------------------
    def current_clip(self):
        """The video item under the playhead of the current timeline, or None (and why)."""
        project = self.resolve.GetProjectManager().GetCurrentProject()
        if project is None:
            return None, "no project is open"
        timeline = project.GetCurrentTimeline()
        if timeline is None:
            return None, "the project has no current timeline"
        self.project, self.timeline = project, timeline
        item = timeline.GetCurrentVideoItem()
        if item is None:
            return None, "no video clip under the playhead"
        return item, ""

    def project_name(self) -> str:
        return str(self.project.GetName())

    @staticmethod
    def clip_info(item) -> dict:
        track_type, track_index = item.GetTrackTypeAndIndex()
        media = item.GetMediaPoolItem()
        path = media.GetClipProperty("File Path") if media is not None else ""
        return {"name": str(item.GetName()), "start": int(item.GetStart()), "duration": int(item.GetDuration()),
                "left_offset": int(item.GetLeftOffset()), "track": int(track_index),
                "file_path": str(path or "")}

    def load_data(self, key: str):
        return self.fusion.GetData(key)

    def save_data(self, key: str, value: str) -> None:
        self.fusion.SetData(key, value)

    # -- rendering the clip's frames ---------------------------------------------------------
    def render_state(self) -> dict:
        return {"format_codec": dict(self.project.GetCurrentRenderFormatAndCodec() or {}),
                "mode": self.project.GetCurrentRenderMode()}

    def restore_render_state(self, state: dict) -> None:
        fc = state["format_codec"]
        if fc.get("format"):
            self.project.SetCurrentRenderFormatAndCodec(fc["format"], fc.get("codec", ""))
        if state["mode"] is not None:
            self.project.SetCurrentRenderMode(state["mode"])

    def exr_float_codec(self) -> Optional[str]:
        """The EXR codec writing 32-bit float, uncompressed or ZIP (preferred in that order)."""
        if self.EXR not in (self.project.GetRenderFormats() or {}).values():
            return None
        codecs = self.project.GetRenderCodecs(self.EXR) or {}
        floats = [(desc, name) for desc, name in codecs.items() if "float" in desc.lower()]
        for want in ("no compression", "zip"):
            for desc, name in floats:
                if want in desc.lower():
                    return name
        return None

    def start_render(self, first: int, last: int, target_dir: str, name: str, codec: str) -> Optional[str]:
        p = self.project
        if not p.SetCurrentRenderFormatAndCodec(self.EXR, codec):
            return None
        p.SetCurrentRenderMode(1)
        if not p.SetRenderSettings({"SelectAllFrames": False, "MarkIn": first, "MarkOut": last,
                                    "TargetDir": target_dir, "CustomName": name,
                                    "ExportVideo": True, "ExportAudio": False}):
            return None
        job = p.AddRenderJob()
        if not job:
            return None
        if not p.StartRendering([job], False):
            p.DeleteRenderJob(job)
            return None
        return job

    def render_status(self, job: str) -> tuple[str, float]:
        status = self.project.GetRenderJobStatus(job) or {}
        return str(status.get("JobStatus", "")), float(status.get("CompletionPercentage", 0) or 0)

    def stop_render(self) -> None:
        self.project.StopRendering()

    def delete_render_job(self, job: str) -> None:
        self.project.DeleteRenderJob(job)

    # -- placing the result --------------------------------------------------------------------
    def video_track_count(self) -> int:
        return int(self.timeline.GetTrackCount("video"))

    def track_is_free(self, index: int, start: int, end: int) -> bool:
        """No item of video track ``index`` overlaps record frames ``start..end-1``."""
        for item in self.timeline.GetItemListInTrack("video", index) or []:
            if item.GetStart() < end and item.GetEnd() > start:
                return False
        return True

    def add_video_track(self) -> int:
        if not self.timeline.AddTrack("video"):
            return 0
        return self.video_track_count()

    def delete_video_track(self, index: int) -> None:
        self.timeline.DeleteTrack("video", index)

    def import_sequence(self, printf_path: str, first: int, last: int):
        items = self.project.GetMediaPool().ImportMedia(
            [{"FilePath": printf_path, "StartIndex": first, "EndIndex": last}])
        return list(items or [])

    def place(self, media_item, frames: int, track: int, record_frame: int):
        placed = self.project.GetMediaPool().AppendToTimeline(
            [{"mediaPoolItem": media_item, "startFrame": 0, "endFrame": frames - 1, "mediaType": 1,
              "trackIndex": track, "recordFrame": record_frame}])
        return list(placed or [])

    def delete_timeline_items(self, items) -> None:
        self.timeline.DeleteClips(list(items), False)

    def delete_media(self, items) -> None:
        self.project.GetMediaPool().DeleteClips(list(items))
