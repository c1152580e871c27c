"""A recording stand-in of exactly the ``nuke`` calls focuspull_nuke.host makes.

Not Nuke: a small model of the parts the adapter touches.  Knobs keep values and
animation curves (linear and constant keys evaluate like Nuke; other interpolations
raise, so a test cannot silently rely on a guess); nodes keep inputs and live in groups;
``execute`` of a Write evaluates the tiny graph inside the FocusPull group (Input ->
Copy -> Write) over ``FakeSource`` nodes and writes real EXR files with
focuspull.io.images.write_image, named as Nuke's EXR writer names channels (rgba -> R, G,
B, A; other layers as ``layer.channel``).  ``ProgressTask`` can be told to report Cancel
after N progress updates; ``executeInMainThread`` queues calls for :func:`run_main_queue`.
Every call is appended to :data:`CALLS` as ``(name, args)``.
"""
from __future__ import annotations

import os
import threading

CALLS: list = []
_lock = threading.Lock()

# Interpolation constants (values are this stand-in's; code must use the names).
SMOOTH, CONSTANT, LINEAR, CATMULL_ROM, CUBIC, HORIZONTAL, BREAK, USER_SET_SLOPE = 0, 1, 2, 3, 4, 5, 6, 0x10
INVISIBLE = 0x400
env = {"gui": os.environ.get("FAKE_NUKE_GUI", "1") == "1"}  # nuke -t: "0"


def _record(name, *args):
    with _lock:
        CALLS.append((name, args))


def calls(name):
    return [args for n, args in CALLS if n == name]


def reset():
    global _root, _current, THIS_NODE, CANCEL_AFTER, PANEL_ANSWER, ON_PROGRESS
    CALLS.clear()
    MAIN_QUEUE.clear()
    MESSAGES.clear()
    MENUS.clear()
    _root = Node("Root", "root", None)
    _root.addKnob(Int_Knob("first_frame", "first"))
    _root.addKnob(Int_Knob("last_frame", "last"))
    _root["first_frame"].setValue(1)
    _root["last_frame"].setValue(3)
    _current = _root
    THIS_NODE = None
    CANCEL_AFTER = None
    PANEL_ANSWER = None
    ON_PROGRESS = None


# -- animation ----------------------------------------------------------------------------------------
class AnimationKey:
    def __init__(self, x, y, interpolation):
        self.x, self.y, self.interpolation = float(x), float(y), interpolation


class AnimationCurve:
    def __init__(self, keys):
        self._keys = sorted((AnimationKey(*k) for k in keys), key=lambda k: k.x)

    def keys(self):
        _record("AnimationCurve.keys")
        return list(self._keys)

    def evaluate(self, t):
        _record("AnimationCurve.evaluate", t)
        ks = self._keys
        if t <= ks[0].x:
            return ks[0].y
        if t >= ks[-1].x:
            return ks[-1].y
        i = max(j for j in range(len(ks)) if ks[j].x <= t)
        a, b = ks[i], ks[i + 1]
        if a.interpolation == CONSTANT:
            return a.y
        if a.interpolation == LINEAR and b.interpolation == LINEAR:
            return a.y + (b.y - a.y) * (t - a.x) / (b.x - a.x)
        raise NotImplementedError("the stand-in evaluates only LINEAR and CONSTANT keys")


# -- knobs -------------------------------------------------------------------------------------------
class Knob:
    cls = "Knob"
    size = 1

    def __init__(self, name, label=None, *rest):
        _record(f"{self.cls}", name, label, *rest)
        self._name, self.label = name, label
        self._value = [0.0] * self.size if self.size > 1 else None
        self.tooltip, self.range, self.flags, self.curves = "", None, 0, {}

    def name(self):
        return self._name

    def Class(self):
        return self.cls

    def value(self, index=None):
        if self.size > 1:
            return self._value[index or 0]
        return self._value

    def setValue(self, value):
        _record("Knob.setValue", self._name, value)
        self._value = list(value) if self.size > 1 else value

    def setTooltip(self, text):
        self.tooltip = text

    def setRange(self, lo, hi):
        self.range = (lo, hi)

    def setFlag(self, flag):
        self.flags |= flag

    def isAnimated(self):
        return bool(self.curves)

    def animation(self, index):
        return self.curves.get(index)

    # test helper (Nuke's equivalent is the curve editor)
    def animate(self, keys, index=0):
        self.curves[index] = AnimationCurve(keys)


class Double_Knob(Knob):
    cls = "Double_Knob"


class Int_Knob(Knob):
    cls = "Int_Knob"


class Boolean_Knob(Knob):
    cls = "Boolean_Knob"


class String_Knob(Knob):
    cls = "String_Knob"


class File_Knob(Knob):
    cls = "File_Knob"


class Tab_Knob(Knob):
    cls = "Tab_Knob"


class XY_Knob(Knob):
    cls = "XY_Knob"
    size = 2


class Enumeration_Knob(Knob):
    cls = "Enumeration_Knob"

    def __init__(self, name, label, values):
        super().__init__(name, label, list(values))
        self.values = list(values)
        self._value = self.values[0]

    def setValue(self, value):
        if value not in self.values:
            raise ValueError(f"{value!r} is not one of {self.values}")
        super().setValue(value)


class Text_Knob(Knob):
    cls = "Text_Knob"

    def __init__(self, name, label=None, text=""):
        super().__init__(name, label, text)
        self._value = text


class PyScript_Knob(Knob):
    cls = "PyScript_Knob"

    def __init__(self, name, label=None, command=""):
        super().__init__(name, label, command)
        self.command = command

    def execute(self):
        _record("PyScript_Knob.execute", self._name)


# -- nodes -------------------------------------------------------------------------------------------
class Format:
    def __init__(self, width, height):
        self._w, self._h = width, height

    def width(self):
        return self._w

    def height(self):
        return self._h


class Node:
    def __init__(self, cls, name, parent, **knobs):
        self.cls, self._name, self.parent = cls, name, parent
        self.knobs, self.inputs, self.children = {}, {}, []
        if parent is not None:
            parent.children.append(self)
        for key, value in knobs.items():
            knob = String_Knob(key, key)
            knob._value = value
            self.knobs[key] = knob
        if cls == "Read":
            for key in ("file", "first", "last", "origfirst", "origlast"):
                self.knobs.setdefault(key, String_Knob(key, key))
            self.knobs["reload"] = PyScript_Knob("reload", "reload")
        if cls in ("Write", "Copy"):
            self.knobs.setdefault("file", String_Knob("file", "file"))
            self.knobs.setdefault("disable", Boolean_Knob("disable", "disable"))

    def Class(self):
        return self.cls

    def name(self):
        return self._name

    def setName(self, name):
        _record("Node.setName", name)
        existing = {n.name() for n in (self.parent.children if self.parent else [])}
        i, base = 1, name
        while f"{base}{i}" in existing:
            i += 1
        self._name = f"{base}{i}"

    def __getitem__(self, name):
        return self.knobs[name]

    def knob(self, name):
        return self.knobs.get(name)

    def addKnob(self, knob):
        _record("Node.addKnob", self._name, knob.name(), knob.Class())
        self.knobs[knob.name()] = knob

    def setInput(self, index, node):
        _record("Node.setInput", self._name, index, node.name() if node else None)
        self.inputs[index] = node

    def input(self, index):
        return self.inputs.get(index)

    def format(self):
        if self.cls == "FakeSource":
            return self._format
        src = self.input(0)
        return src.format() if src is not None else Format(64, 48)

    def begin(self):
        global _current
        _record("Group.begin", self._name)
        _current = self

    def end(self):
        global _current
        _record("Group.end", self._name)
        _current = self.parent or _root


def fake_source(name, frames, width, height):
    """A test image: ``frames`` = {frame: {"rgba.red": HxW, ..., "depth.Z": HxW}} (Nuke channel names)."""
    node = Node("FakeSource", name, _root)
    node.frames, node._format = frames, Format(width, height)
    return node


class _Nodes:
    def __getattr__(self, cls):
        def make(**knobs):
            _record(f"nodes.{cls}", knobs)
            name = knobs.pop("name", f"{cls}{len(_current.children) + 1}")
            return Node(cls, name, _current, **knobs)
        return make


nodes = _Nodes()


def createNode(cls, inpanel=True):
    _record("createNode", cls, inpanel)
    return Node(cls, cls, _current)


def toNode(name):
    _record("toNode", name)
    for group in (_current, _root):
        for node in group.children:
            if node.name() == name:
                return node
    return None


def root():
    return _root


def thisNode():
    return THIS_NODE


# -- rendering the hidden Write -------------------------------------------------------------------------
def _exr_name(channel):
    layer, _, chan = channel.partition(".")
    if layer == "rgba":
        return {"red": "R", "green": "G", "blue": "B", "alpha": "A"}[chan]
    return channel


def _pixels(node, frame):
    if node is None:
        return {}
    if node.cls == "FakeSource":
        if frame not in node.frames:
            raise RuntimeError(f"{node.name()}: no frame {frame}")  # Nuke: Read error
        return dict(node.frames[frame])
    if node.cls == "Input":
        inputs = [c for c in node.parent.children if c.cls == "Input"]
        return _pixels(node.parent.input(inputs.index(node)), frame)
    if node.cls == "Copy":
        b = _pixels(node.input(0), frame)
        if node["disable"].value():
            return b
        a = _pixels(node.input(1), frame)
        b[node["to0"].value()] = a[node["from0"].value()]
        return b
    raise NotImplementedError(node.cls)


def execute(write, first, last, incr=1):
    """Nuke renders the Write: here, the Input -> Copy graph into real EXR files."""
    import numpy as np

    from focuspull.io.images import write_image

    _record("execute", write.name(), first, last, incr)
    compression = {"Zip (1 scanline)": "zips", "Zip (16 scanlines)": "zip", "none": "none"}[
        write["compression"].value()]
    for frame in range(first, last + 1, incr):
        px = _pixels(write.input(0), frame)
        names = [_exr_name(c) for c in px]
        arr = np.stack([np.asarray(v, np.float32) for v in px.values()], axis=-1)
        path = write["file"].value().replace("####", f"{frame:04d}")
        write_image(path, arr, names, compression=compression, half=write["datatype"].value() != "32 bit float")


# -- progress, threads, messages, menus, panels ------------------------------------------------------------
ON_PROGRESS = None  # test hook: called with each progress value > 0 (e.g. to press the node's Cancel)
CANCEL_AFTER = None  # report Cancel once this many progress updates with done > 0 were made
MAIN_QUEUE: list = []
MESSAGES: list = []
MENUS: list = []
PANEL_ANSWER = None


class ProgressTask:
    def __init__(self, title):
        _record("ProgressTask", title)
        self.title, self.progress, self.message, self.updates = title, 0, "", 0

    def setProgress(self, i):
        _record("ProgressTask.setProgress", i)
        self.progress = i
        if i > 0:
            self.updates += 1
            if ON_PROGRESS is not None:
                ON_PROGRESS(i)

    def setMessage(self, text):
        _record("ProgressTask.setMessage", text)
        self.message = text

    def isCancelled(self):
        return CANCEL_AFTER is not None and self.updates >= CANCEL_AFTER


def executeInMainThread(call, args=(), kwargs=None):
    _record("executeInMainThread", getattr(call, "__name__", call))
    with _lock:
        MAIN_QUEUE.append((call, args, kwargs or {}))


def run_main_queue():
    """What Nuke's event loop does: run the queued calls on this (the main) thread."""
    while MAIN_QUEUE:
        call, args, kwargs = MAIN_QUEUE.pop(0)
        call(*args, **kwargs)


def message(text):
    _record("message", text)
    MESSAGES.append(text)


class _Menu:
    def __init__(self, kind, name):
        self.kind, self.name = kind, name

    def addCommand(self, path, command, icon=""):
        _record(f"{self.kind}.addCommand", self.name, path, command)
        MENUS.append((self.kind, self.name, path, command))


def menu(name):
    return _Menu("menu", name)


def toolbar(name):
    return _Menu("toolbar", name)


class Panel:
    def __init__(self, title):
        _record("Panel", title)
        self.fields = {}

    def addSingleLineInput(self, name, value):
        self.fields[name] = value

    def addPasswordInput(self, name, value):
        self.fields[name] = value

    def addEnumerationPulldown(self, name, values):
        self.fields[name] = values.split()[0]

    def show(self):
        if PANEL_ANSWER is None:
            return 0
        self.fields.update(PANEL_ANSWER)
        return 1

    def value(self, name):
        return self.fields[name]


def scriptOpen(path):
    """The stand-in's 'script' is a Python file that builds nodes with this module."""
    _record("scriptOpen", path)
    with open(path) as fh:
        exec(compile(fh.read(), path, "exec"), {"__name__": "__nuke_script__"})


_root = _current = None
THIS_NODE = None
reset()
