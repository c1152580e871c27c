"""A recording stand-in for exactly the Resolve / Fusion calls focuspull_resolve.host makes.

Nothing else exists on these objects (an attribute the adapter should not use raises
AttributeError), every call is recorded in ``Recorder.calls``, and what the hosts would do
to the disk is real: the Saver render and Resolve's render job write real EXR files with
focuspull.io.images.write_image; ImportMedia and the Loader need the files to exist.

``state()`` of a comp / a project is a plain snapshot (tools, inputs, wiring, data; tracks,
items, media pool, render jobs and settings) so a test can assert a failed run left it as
it was.  Windows are answered by a ``User``: one handler per window ID (fill the settings
form and press Render, read a message and press OK, press Cancel in the progress window).
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Optional

import numpy as np


def write_image(*args, **kw):
    # The real EXR writer, loaded on first use so that importing the stand-in pulls in no
    # OpenImageIO (the import test runs the launchers with it in a clean interpreter).
    from focuspull.io.images import write_image as real

    return real(*args, **kw)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple]] = []

    def rec(self, who: str, what: str, *args) -> None:
        self.calls.append((who, what, args))

    def names(self) -> list[str]:
        return [f"{who}.{what}" for who, what, _ in self.calls]


# ================================================================== UI Manager ===========
class Widget:
    def __init__(self, kind: str, props: dict, children: list) -> None:
        self.kind = kind
        self.props = dict(props)
        self.children = children
        self.items: list[str] = []
        self.__dict__.update({k: v for k, v in props.items()})
        self.__dict__.setdefault("Enabled", True)
        if kind == "ComboBox":
            self.__dict__.setdefault("CurrentIndex", 0)

    @property
    def CurrentText(self) -> str:  # noqa: N802 - the UI Manager's name
        return self.items[self.CurrentIndex]

    def AddItems(self, items) -> None:  # noqa: N802
        assert self.kind == "ComboBox", f"AddItems on a {self.kind}"
        self.items.extend(items)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


class UIManager:
    """``fusion.UIManager``: widget constructors and timers."""

    _KINDS = ("VGroup", "HGroup", "Label", "LineEdit", "SpinBox", "DoubleSpinBox", "CheckBox", "ComboBox", "Button")

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.timers: list["Timer"] = []

    def __getattr__(self, kind: str):
        if kind not in self._KINDS:
            raise AttributeError(kind)

        def make(*args):
            props = args[0] if args and isinstance(args[0], dict) else {}
            children = args[-1] if args and isinstance(args[-1], list) else []
            return Widget(kind, props, children)
        return make

    def Timer(self, props: dict) -> "Timer":  # noqa: N802
        t = Timer(props)
        self.timers.append(t)
        return t


class Timer:
    def __init__(self, props: dict) -> None:
        self.ID = props["ID"]
        self.Interval = props["Interval"]
        self.running = False

    def Start(self) -> None:  # noqa: N802
        self.running = True

    def Stop(self) -> None:  # noqa: N802
        self.running = False


class _Slot:
    def __init__(self, win: "Window", wid: str) -> None:
        object.__setattr__(self, "_win", win)
        object.__setattr__(self, "_id", wid)

    def __setattr__(self, event: str, fn) -> None:
        self._win.handlers[(self._id, event)] = fn


class _On:
    def __init__(self, win: "Window") -> None:
        object.__setattr__(self, "_win", win)

    def __getattr__(self, wid: str) -> _Slot:
        return _Slot(self._win, wid)


class Window:
    def __init__(self, props: dict, layout: Widget) -> None:
        self.ID = props["ID"]
        self.props = props
        self.layout = layout
        self.handlers: dict[tuple[str, str], Callable] = {}
        self.On = _On(self)
        self.shown = False
        self._by_id = {w.ID: w for w in layout.walk() if "ID" in w.props}

    def Find(self, wid: str) -> Widget:  # noqa: N802
        return self._by_id[wid]

    def Show(self) -> None:  # noqa: N802
        self.shown = True

    def Hide(self) -> None:  # noqa: N802
        self.shown = False

    # -- what a user does --------------------------------------------------------------------
    def fire(self, wid: str, event: str) -> None:
        self.handlers[(wid, event)]({"who": wid, "what": event})

    def click(self, wid: str) -> None:
        assert self.Find(wid).Enabled, f"{wid} is disabled"
        self.fire(wid, "Clicked")

    def text(self) -> str:
        return "\n".join(str(w.Text) for w in self.layout.walk() if w.kind == "Label" and w.props.get("ID"))


class Dispatcher:
    """``bmd.UIDispatcher(ui)``: AddWindow, RunLoop (answered by the User), ExitLoop."""

    def __init__(self, ui: UIManager, user: "User", rec: Recorder) -> None:
        self.ui = ui
        self.user = user
        self.rec = rec
        self._exit = False

    def AddWindow(self, props: dict, layout: Widget) -> Window:  # noqa: N802
        self.rec.rec("ui", "AddWindow", props["ID"])
        win = Window(props, layout)
        self.user.windows.append(win)
        return win

    def ExitLoop(self) -> None:  # noqa: N802
        self._exit = True

    def RunLoop(self) -> None:  # noqa: N802
        win = self.user.windows[-1]
        assert win.shown, "RunLoop without a shown window would show nothing"
        self._exit = False
        self.user.opened(win)
        ticks = 0
        while not self._exit:
            timers = [t for t in self.ui.timers if t.running]
            if not timers:
                raise AssertionError(f"RunLoop of {win.ID} would wait for ever: nothing left to happen")
            ticks += 1
            self.user.tick(win, ticks)  # the user acts before each timer event (tick 1: before the first)
            for t in [t for t in timers if t.running]:
                win.fire(t.ID, "Timeout")
            if not self._exit:
                time.sleep(min(t.Interval for t in timers) / 1000.0)


class User:
    """Answers windows.  ``settings``: list of ``{path: value}`` to type into successive
    settings windows (None = close it); ``on_progress(win, tick)`` may press Cancel."""

    def __init__(self) -> None:
        self.windows: list[Window] = []
        self.settings: list[Optional[dict]] = []
        self.messages: list[str] = []
        self.forms_seen: list[Window] = []
        self.on_progress: Optional[Callable[[Window, int], None]] = None
        self.progress_texts: list[str] = []

    def opened(self, win: Window) -> None:
        if win.ID == "fpMessage":
            self.messages.append(win.Find("Text").Text)
            win.click("OK")
        elif win.ID == "fpSettings":
            self.forms_seen.append(win)
            answer = self.settings.pop(0) if self.settings else {}
            if answer is None:
                win.fire("fpSettings", "Close")
                return
            for key, value in answer.items():
                w = win.Find(key if key == "server" else "f_" + key.replace(".", "__"))
                if w.kind == "LineEdit":
                    w.Text = str(value)
                elif w.kind == "CheckBox":
                    w.Checked = bool(value)
                elif w.kind == "ComboBox":
                    w.CurrentIndex = w.items.index(value)
                else:
                    assert w.props["Minimum"] <= value <= w.props["Maximum"], "outside the spin box range"
                    w.Value = value
            win.click("Render")

    def tick(self, win: Window, n: int) -> None:
        if win.ID == "fpProgress":
            self.progress_texts.append(win.Find("Status").Text)
            if self.on_progress is not None:
                self.on_progress(win, n)


class Bmd:
    def __init__(self, user: User, rec: Recorder) -> None:
        self.user = user
        self.rec = rec

    def UIDispatcher(self, ui: UIManager) -> Dispatcher:  # noqa: N802
        return Dispatcher(ui, self.user, self.rec)


class Fusion:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.UIManager = UIManager(rec)
        self.data: dict[str, Any] = {}

    def GetData(self, key: str):  # noqa: N802
        return self.data.get(key)

    def SetData(self, key: str, value) -> None:  # noqa: N802
        self.rec.rec("fusion", "SetData", key)
        self.data[key] = value


# ================================================================== Fusion comp ==========
class Output:
    def __init__(self, tool: "Tool") -> None:
        self.tool = tool

    def GetConnectedInputs(self) -> dict:  # noqa: N802
        found = [inp for t in self.tool.comp.tools.values() for inp in t.links.values() if inp.source is self]
        return {float(i + 1): inp for i, inp in enumerate(found)}


class Input:
    def __init__(self, tool: "Tool", name: str) -> None:
        self.tool = tool
        self.name = name
        self.source: Optional[Output] = None

    def ConnectTo(self, output: Output) -> bool:  # noqa: N802
        self.tool.comp.rec.rec(self.tool.name, "ConnectTo", self.name, output.tool.name)
        self.source = output
        return True

    def GetTool(self) -> "Tool":  # noqa: N802
        return self.tool


class Tool:
    def __init__(self, comp: "Comp", reg_id: str, name: str, pos=(0.0, 0.0)) -> None:
        self.comp = comp
        self.reg_id = reg_id
        self.name = name
        self.pos = pos
        self.inputs: dict[str, Any] = {}
        self.links: dict[str, Input] = {}
        self.Output = Output(self)
        self.frames: dict[int, tuple[np.ndarray, Optional[np.ndarray]]] = {}  # what this tool outputs

    def GetAttrs(self) -> dict:  # noqa: N802
        return {"TOOLS_Name": self.name, "TOOLS_RegID": self.reg_id}

    def SetInput(self, name: str, value) -> bool:  # noqa: N802
        self.comp.rec.rec(self.name, "SetInput", name, value)
        if self.reg_id == "Loader" and name == "Clip":
            assert os.path.isfile(value), f"Loader Clip {value} does not exist"
        if self.reg_id == "Loader" and name == "GlobalIn":
            assert value <= self.inputs.get("GlobalOut", value), "GlobalIn past GlobalOut"
        self.inputs[name] = value
        return True

    def ConnectInput(self, name: str, tool: "Tool") -> bool:  # noqa: N802
        self.comp.rec.rec(self.name, "ConnectInput", name, tool.name)
        self.link(name).source = tool.Output
        return True

    def Delete(self) -> None:  # noqa: N802
        self.comp.rec.rec(self.name, "Delete")
        for t in self.comp.tools.values():
            for inp in t.links.values():
                if inp.source is self.Output:
                    inp.source = None
        del self.comp.tools[self.name]

    # -- stand-in helpers ---------------------------------------------------------------------
    def link(self, name: str) -> Input:
        return self.links.setdefault(name, Input(self, name))

    def image(self, frame: int):
        if self.frames:
            return self.frames[frame]
        src = self.links.get("Input") or self.links.get("Background")
        assert src is not None and src.source is not None, f"{self.name} has no input"
        return src.source.tool.image(frame)


class _FlowView:
    def __init__(self, comp: "Comp") -> None:
        self.comp = comp

    def GetPosTable(self, tool: Tool) -> dict:  # noqa: N802
        return {1.0: tool.pos[0], 2.0: tool.pos[1]}


class _Frame:
    def __init__(self, comp: "Comp") -> None:
        self.FlowView = _FlowView(comp)


_SAVER_COMPRESSION = {0: "none", 2: "zips", 3: "zip"}


class Comp:
    def __init__(self, rec: Recorder, *, start: int, end: int, file_name: str = "") -> None:
        self.rec = rec
        self.attrs = {"COMPN_RenderStart": float(start), "COMPN_RenderEnd": float(end), "COMPS_FileName": file_name}
        self.tools: dict[str, Tool] = {}
        self.selected: list[Tool] = []
        self.data: dict[str, Any] = {}
        self.CurrentFrame = _Frame(self)
        self.locks = 0
        self.undo_depth = 0
        self.fail_render = False

    # -- API -------------------------------------------------------------------------------------
    def GetToolList(self, selected: bool, reg_id: Optional[str] = None) -> dict:  # noqa: N802
        tools = self.selected if selected else list(self.tools.values())
        return {float(i + 1): t for i, t in enumerate(tools) if reg_id in (None, t.reg_id)}

    def GetAttrs(self) -> dict:  # noqa: N802
        return dict(self.attrs)

    def GetData(self, key: str):  # noqa: N802
        return self.data.get(key)

    def SetData(self, key: str, value) -> None:  # noqa: N802
        self.rec.rec("comp", "SetData", key)
        self.data[key] = value

    def Lock(self) -> None:  # noqa: N802
        self.locks += 1

    def Unlock(self) -> None:  # noqa: N802
        assert self.locks > 0
        self.locks -= 1

    def StartUndo(self, name: str) -> None:  # noqa: N802
        self.undo_depth += 1

    def EndUndo(self, keep: bool) -> None:  # noqa: N802
        assert self.undo_depth > 0
        self.undo_depth -= 1

    def AddTool(self, reg_id: str, x: float, y: float) -> Tool:  # noqa: N802
        assert reg_id in ("Saver", "Loader"), f"unexpected AddTool({reg_id})"
        n = 1
        while f"{reg_id}{n}" in self.tools:
            n += 1
        tool = Tool(self, reg_id, f"{reg_id}{n}", (x, y))
        self.tools[tool.name] = tool
        self.rec.rec("comp", "AddTool", reg_id, x, y)
        return tool

    def Render(self, args: dict) -> bool:  # noqa: N802
        self.rec.rec("comp", "Render", dict(args, Tool=args["Tool"].name))
        assert args.get("Wait") is True
        saver = args["Tool"]
        assert saver.reg_id == "Saver" and saver.name in self.tools
        if self.fail_render:
            return False
        inp = saver.inputs
        assert inp["OutputFormat"] == "OpenEXRFormat"
        clip = inp["Clip"]
        head, digits, tail = re.match(r"(.*?)(\d+)(\.[^.]+)$", clip).groups()
        for frame in range(int(args["Start"]), int(args["End"]) + 1):
            rgba, z = saver.image(frame)
            names = [c for c, key in zip("RGBA", ("Red", "Green", "Blue", "Alpha"))
                     if inp.get(f"OpenEXRFormat.{key}Enable")]
            pixels = [rgba[..., "RGBA".index(c)] for c in names]
            if inp.get("OpenEXRFormat.ZEnable") and z is not None:
                names.append("Z")
                pixels.append(z)
            write_image(f"{head}{frame:0{len(digits)}d}{tail}", np.stack(pixels, axis=-1), names,
                        compression=_SAVER_COMPRESSION[int(inp["OpenEXRFormat.Compression"])],
                        half=int(inp["OpenEXRFormat.Depth"]) == 1)
        return True

    # -- stand-in helpers ---------------------------------------------------------------------
    def add(self, reg_id: str, name: str, pos=(0.0, 0.0)) -> Tool:
        tool = Tool(self, reg_id, name, pos)
        self.tools[name] = tool
        return tool

    def state(self) -> dict:
        return {"tools": {n: (t.reg_id, dict(t.inputs),
                              {k: (i.source.tool.name if i.source else None) for k, i in t.links.items()})
                          for n, t in self.tools.items()},
                "data": dict(self.data), "locks": self.locks, "undo": self.undo_depth}


# ================================================================== Resolve ==============
class MediaPoolItem:
    def __init__(self, file_path: str, frames: Optional[dict[int, np.ndarray]] = None) -> None:
        self.props = {"File Path": file_path}
        self.frames = frames  # a movie's pictures by source frame index (0-based)

    def GetClipProperty(self, name: str):  # noqa: N802
        return self.props.get(name, "")


class TimelineItem:
    def __init__(self, timeline: "Timeline", name: str, start: int, duration: int, media: MediaPoolItem,
                 left_offset: int = 0) -> None:
        self.timeline = timeline
        self.name = name
        self.start = start
        self.duration = duration
        self.media = media
        self.left_offset = left_offset

    def GetName(self):  # noqa: N802
        return self.name

    def GetStart(self):  # noqa: N802
        return self.start

    def GetEnd(self):  # noqa: N802
        return self.start + self.duration

    def GetDuration(self):  # noqa: N802
        return self.duration

    def GetLeftOffset(self):  # noqa: N802
        return self.left_offset

    def GetMediaPoolItem(self):  # noqa: N802
        return self.media

    def GetTrackTypeAndIndex(self):  # noqa: N802
        for i, track in enumerate(self.timeline.tracks):
            if self in track:
                return ["video", i + 1]
        raise AssertionError("item not on the timeline")

    def picture(self, record_frame: int) -> np.ndarray:
        return self.media.frames[self.left_offset + record_frame - self.start]


class Timeline:
    def __init__(self, rec: Recorder, tracks: int = 1) -> None:
        self.rec = rec
        self.tracks: list[list[TimelineItem]] = [[] for _ in range(tracks)]
        self.playhead_item: Optional[TimelineItem] = None
        self.refuse_add_track = False

    def GetCurrentVideoItem(self):  # noqa: N802
        return self.playhead_item

    def GetTrackCount(self, kind: str) -> int:  # noqa: N802
        assert kind == "video"
        return len(self.tracks)

    def GetItemListInTrack(self, kind: str, index: int):  # noqa: N802
        assert kind == "video" and 1 <= index <= len(self.tracks)
        return list(self.tracks[index - 1])

    def AddTrack(self, kind: str) -> bool:  # noqa: N802
        self.rec.rec("timeline", "AddTrack", kind)
        assert kind == "video"
        if self.refuse_add_track:
            return False
        self.tracks.append([])
        return True

    def DeleteTrack(self, kind: str, index: int) -> bool:  # noqa: N802
        self.rec.rec("timeline", "DeleteTrack", kind, index)
        del self.tracks[index - 1]
        return True

    def DeleteClips(self, items, ripple: bool = False) -> bool:  # noqa: N802
        self.rec.rec("timeline", "DeleteClips", len(items), ripple)
        assert ripple is False
        for item in items:
            for track in self.tracks:
                if item in track:
                    track.remove(item)
        return True

    # -- stand-in helpers ---------------------------------------------------------------------
    def put(self, track: int, item: TimelineItem) -> TimelineItem:
        self.tracks[track - 1].append(item)
        return item

    def state(self):
        return [[(i.name, i.start, i.duration, i.left_offset, i.media.props["File Path"]) for i in t]
                for t in self.tracks]


class MediaPool:
    def __init__(self, rec: Recorder, project: "Project") -> None:
        self.rec = rec
        self.project = project
        self.clips: list[MediaPoolItem] = []
        self.refuse_append = False

    def ImportMedia(self, items: list) -> list:  # noqa: N802
        self.rec.rec("mediapool", "ImportMedia", items)
        out = []
        for info in items:
            pattern, first, last = info["FilePath"], info["StartIndex"], info["EndIndex"]
            if not all(os.path.isfile(pattern % f) for f in range(first, last + 1)):
                return []
            head, pad, tail = re.match(r"(.*)%0(\d+)d(.*)$", pattern).groups()
            item = MediaPoolItem(f"{head}[{first:0{int(pad)}d}-{last:0{int(pad)}d}]{tail}")
            item.sequence = (pattern, first, last)
            self.clips.append(item)
            out.append(item)
        return out

    def AppendToTimeline(self, infos: list) -> list:  # noqa: N802
        self.rec.rec("mediapool", "AppendToTimeline", [dict(i, mediaPoolItem="<item>") for i in infos])
        if self.refuse_append:
            return []
        timeline = self.project.timeline
        placed = []
        for info in infos:
            track = info["trackIndex"]
            assert 1 <= track <= len(timeline.tracks), "AppendToTimeline to a missing track"
            n = info["endFrame"] - info["startFrame"] + 1
            start = info["recordFrame"]
            for other in timeline.tracks[track - 1]:
                assert not (other.start < start + n and other.start + other.duration > start), "overlaps"
            item = TimelineItem(timeline, os.path.basename(info["mediaPoolItem"].props["File Path"]), start, n,
                                info["mediaPoolItem"], info["startFrame"])
            placed.append(timeline.put(track, item))
        return placed

    def DeleteClips(self, items) -> bool:  # noqa: N802
        self.rec.rec("mediapool", "DeleteClips", len(items))
        for item in items:
            self.clips.remove(item)
        return True


class Project:
    CODECS = {"RGB Half (No compression)": "RGBHalf", "RGB Float (No compression)": "RGBFloat",
              "RGB Float (ZIP)": "RGBFloatZIP", "RGB Half (PIZ)": "RGBHalfPIZ"}

    def __init__(self, rec: Recorder, name: str, timeline: Optional[Timeline]) -> None:
        self.rec = rec
        self.name = name
        self.timeline = timeline
        self.pool = MediaPool(rec, self)
        self.format_codec = {"format": "mov", "codec": "H264"}
        self.mode = 0
        self.render_settings: dict = {}
        self.jobs: dict[str, dict] = {}
        self.render_polls = 1  # status polls before a job completes
        self.render_fails = False
        self._n = 0

    def GetName(self):  # noqa: N802
        return self.name

    def GetCurrentTimeline(self):  # noqa: N802
        return self.timeline

    def GetMediaPool(self):  # noqa: N802
        return self.pool

    def GetRenderFormats(self):  # noqa: N802
        return {"OpenEXR": "exr", "QuickTime": "mov"}

    def GetRenderCodecs(self, fmt: str):  # noqa: N802
        return dict(self.CODECS) if fmt == "exr" else {"H.264": "H264"}

    def GetCurrentRenderFormatAndCodec(self):  # noqa: N802
        return dict(self.format_codec)

    def SetCurrentRenderFormatAndCodec(self, fmt: str, codec: str) -> bool:  # noqa: N802
        self.rec.rec("project", "SetCurrentRenderFormatAndCodec", fmt, codec)
        if codec not in self.GetRenderCodecs(fmt).values():
            return False
        self.format_codec = {"format": fmt, "codec": codec}
        return True

    def GetCurrentRenderMode(self):  # noqa: N802
        return self.mode

    def SetCurrentRenderMode(self, mode: int) -> bool:  # noqa: N802
        self.rec.rec("project", "SetCurrentRenderMode", mode)
        self.mode = mode
        return True

    def SetRenderSettings(self, settings: dict) -> bool:  # noqa: N802
        self.rec.rec("project", "SetRenderSettings", dict(settings))
        known = {"SelectAllFrames", "MarkIn", "MarkOut", "TargetDir", "CustomName", "ExportVideo", "ExportAudio"}
        assert set(settings) <= known, set(settings) - known
        self.render_settings.update(settings)
        return True

    def AddRenderJob(self):  # noqa: N802
        self._n += 1
        job = f"job-{self._n}"
        self.jobs[job] = {"settings": dict(self.render_settings), "codec": dict(self.format_codec),
                          "mode": self.mode, "status": "Ready", "polls": 0, "percent": 0}
        self.rec.rec("project", "AddRenderJob", job)
        return job

    def DeleteRenderJob(self, job: str) -> bool:  # noqa: N802
        self.rec.rec("project", "DeleteRenderJob", job)
        del self.jobs[job]
        return True

    def StartRendering(self, jobs: list, interactive: bool = False) -> bool:  # noqa: N802
        self.rec.rec("project", "StartRendering", list(jobs), interactive)
        for job in jobs:
            self.jobs[job]["status"] = "Rendering"
        return True

    def StopRendering(self) -> None:  # noqa: N802
        self.rec.rec("project", "StopRendering")
        for j in self.jobs.values():
            if j["status"] == "Rendering":
                j["status"] = "Cancelled"

    def GetRenderJobStatus(self, job: str) -> dict:  # noqa: N802
        j = self.jobs[job]
        if j["status"] == "Rendering":
            j["polls"] += 1
            if j["polls"] >= self.render_polls:
                self._render(j)
        return {"JobStatus": j["status"], "CompletionPercentage": j["percent"]}

    def _render(self, j: dict) -> None:
        s = j["settings"]
        assert j["codec"]["format"] == "exr" and j["mode"] == 1 and s["SelectAllFrames"] is False
        frames = list(range(s["MarkIn"], s["MarkOut"] + 1))
        if self.render_fails:
            frames = frames[: len(frames) // 2]
        for rf in frames:
            item = next(i for t in self.timeline.tracks for i in t if i.start <= rf < i.start + i.duration)
            rgb = item.picture(rf)
            write_image(os.path.join(s["TargetDir"], f"{s['CustomName']}_{rf:08d}.exr"), rgb, ["R", "G", "B"],
                        compression="zip" if "ZIP" in j["codec"]["codec"] else "none",
                        half="Half" in j["codec"]["codec"])
        j["status"], j["percent"] = ("Failed", 50) if self.render_fails else ("Complete", 100)

    def state(self) -> dict:
        return {"timeline": self.timeline.state() if self.timeline else None,
                "media": [c.props["File Path"] for c in self.pool.clips], "jobs": sorted(self.jobs),
                "format_codec": dict(self.format_codec), "mode": self.mode}


class ProjectManager:
    def __init__(self, project: Optional[Project]) -> None:
        self.project = project

    def GetCurrentProject(self):  # noqa: N802
        return self.project


class Resolve:
    def __init__(self, rec: Recorder, project: Optional[Project], fusion: Fusion) -> None:
        self.pm = ProjectManager(project)
        self.fusion = fusion

    def GetProjectManager(self):  # noqa: N802
        return self.pm

    def Fusion(self):  # noqa: N802
        return self.fusion
