"""The one adapter between focuspull and Nuke: every ``nuke.*`` call of the plugin is here.

The rest of ``focuspull_nuke`` calls only these functions, so tests run it outside Nuke
against a recording stand-in of exactly these calls (tests/nuke_plugin/fake/nuke.py).
Checked against Foundry's Python API reference (learn.foundry.com/nuke/developers/150/
pythondevguide/_autosummary/<name>.html unless another page is given):

==================================================  ============================================
call                                                reference page
==================================================  ============================================
nuke.menu(name).addCommand(path, command)           nuke.Menu (addCommand)
nuke.toolbar(name).addCommand(path, command)        nuke.toolbar, nuke.ToolBar (addCommand)
nuke.createNode("Group", inpanel=False)             nuke.createNode
Group.begin() / Group.end()                         nuke.Group
nuke.nodes.Input/Copy/Write/Read/Output(**knobs)    nuke.nodes
Node.setInput(i, node) / input(i) / setName / name  nuke.Node
Node.addKnob, Node.knob(name), node[name]           nuke.Node
Node.format().height()                              nuke.Node (format), nuke.Format
nuke.Tab_Knob / Text_Knob / Double_Knob /           nuke.Tab_Knob, nuke.Text_Knob, nuke.Double_Knob,
  Int_Knob / Boolean_Knob / Enumeration_Knob /        nuke.Int_Knob, nuke.Boolean_Knob,
  String_Knob / File_Knob / XY_Knob / PyScript_Knob   nuke.Enumeration_Knob, nuke.String_Knob,
                                                      nuke.File_Knob, nuke.XY_Knob (17.1),
                                                      nuke.PyScript_Knob (132)
Knob.setTooltip / setRange / setValue / setFlag     nuke.Knob, nuke.Array_Knob (setRange);
  (nuke.INVISIBLE)                                    nuke.Text_Knob (setValue)
Knob.value() / isAnimated() / Class()               nuke.Knob, nuke.Array_Knob
Array_Knob.animation(i) -> AnimationCurve|None      nuke.XY_Knob (animation), nuke.Array_Knob
AnimationCurve.keys() / evaluate(t)                 nuke.AnimationCurve
AnimationKey.x / .y / .interpolation                nuke.AnimationKey (160); nuke.LINEAR etc.
PyScript_Knob.execute()  (the Read's reload)        nuke.PyScript_Knob (132)
nuke.execute(write, first, last, 1)                 nuke.execute (130: nuke.render page)
nuke.ProgressTask(title) .setProgress(i)            nuke.ProgressTask (131, 17.1)
  .setMessage(s) .isCancelled()
nuke.executeInMainThread(call, args)                nuke.executeInMain module (122);
                                                      nukescripts.executeInMainThread (160)
nuke.message(text)                                  nuke.message
nuke.thisNode() / nuke.toNode(name)                 nuke.thisNode, nuke.toNode
nuke.env["gui"]                                     nuke.env
nuke.root()["first_frame"/"last_frame"].value()     nuke.root, nuke.Root
nuke.scriptOpen(path)                               nuke.scriptOpen
nuke.Panel(title) .addSingleLineInput /             nuke.Panel
  .addPasswordInput / .addEnumerationPulldown /
  .show() / .value(name)
==================================================  ============================================
"""
from __future__ import annotations

from typing import Any, Callable

import nuke

from focuspull_nuke.curves import LINEAR, Curve

WRITE = "fp_cache_write"
READ = "fp_result"
MATTE_COPY = "fp_matte_copy"
#: EXR channel the Copy puts the matte input's alpha into (Nuke's built-in mask layer).
MATTE_CHANNEL = "mask.a"
_KNOB_CLASSES = {"double": "Double_Knob", "int": "Int_Knob", "bool": "Boolean_Knob", "enum": "Enumeration_Knob",
                 "string": "String_Knob", "file": "File_Knob", "xy": "XY_Knob"}


# -- install --------------------------------------------------------------------------------
def register_menus(create_command: str, prefs_command: str, icon: str = "") -> None:
    """FocusPull under Filter in the Nodes toolbar, plus a FocusPull menu with the preferences."""
    nuke.menu("Nodes").addCommand("Filter/FocusPull", create_command, icon=icon)
    nuke.toolbar("Nodes").addCommand("FocusPull/FocusPull", create_command, icon=icon)
    nuke.menu("Nuke").addCommand("FocusPull/Preferences...", prefs_command)


def is_gui() -> bool:
    return bool(nuke.env["gui"])


def root_range() -> tuple[int, int]:
    root = nuke.root()
    return int(root["first_frame"].value()), int(root["last_frame"].value())


def open_script(path: str) -> None:
    nuke.scriptOpen(path)


def find_node(name: str):
    return nuke.toNode(name)


def node_name(node) -> str:
    return node.name()


def this_node():
    return nuke.thisNode()


def message(text: str) -> None:
    nuke.message(text)


# -- building the node --------------------------------------------------------------------------
def create_group(name: str):
    """The FocusPull group: inputs img (0) and matte (1), the hidden Write of the input, a
    Read of the result as the output."""
    group = nuke.createNode("Group", inpanel=False)
    group.setName(name)
    group.begin()
    try:
        img = nuke.nodes.Input(name="img")
        matte = nuke.nodes.Input(name="matte")
        copy = nuke.nodes.Copy(name=MATTE_COPY, from0="rgba.alpha", to0=MATTE_CHANNEL, disable=True)
        copy.setInput(0, img)
        copy.setInput(1, matte)
        write = nuke.nodes.Write(name=WRITE, file_type="exr", channels="all", datatype="32 bit float",
                                 compression="Zip (1 scanline)", metadata="no metadata", disable=False)
        write.setInput(0, copy)
        read = nuke.nodes.Read(name=READ, on_error="black")
        output = nuke.nodes.Output()
        output.setInput(0, read)
    finally:
        group.end()
    return group


def add_tab(node, name: str, label: str) -> None:
    node.addKnob(nuke.Tab_Knob(name, label))


def add_text(node, name: str, label: str, text: str = "") -> None:
    node.addKnob(nuke.Text_Knob(name, label, text))


def add_button(node, name: str, label: str, command: str, tooltip: str = "") -> None:
    knob = nuke.PyScript_Knob(name, label, command)
    knob.setTooltip(tooltip)
    node.addKnob(knob)


def add_knob(node, cls: str, name: str, label: str, tooltip: str = "", default: Any = None,
             minimum: float | None = None, maximum: float | None = None, choices=()) -> None:
    """One generated knob: ``cls`` is a :class:`focuspull_nuke.knobs.KnobSpec` class name."""
    ctor = getattr(nuke, _KNOB_CLASSES[cls])
    knob = ctor(name, label, list(choices)) if cls == "enum" else ctor(name, label)
    knob.setTooltip(tooltip)
    if minimum is not None and maximum is not None and cls in ("double", "int", "xy"):
        knob.setRange(minimum, maximum)
    if default is not None:
        knob.setValue(list(default) if cls == "xy" else default)
    node.addKnob(knob)


def add_int(node, name: str, label: str, value: int, tooltip: str = "") -> None:
    knob = nuke.Int_Knob(name, label)
    knob.setValue(value)
    knob.setTooltip(tooltip)
    node.addKnob(knob)


def add_bool(node, name: str, label: str, value: bool, tooltip: str = "") -> None:
    knob = nuke.Boolean_Knob(name, label)
    knob.setValue(value)
    knob.setTooltip(tooltip)
    node.addKnob(knob)


def add_hidden_string(node, name: str) -> None:
    knob = nuke.String_Knob(name, name)
    knob.setFlag(nuke.INVISIBLE)
    node.addKnob(knob)


# -- reading knobs ------------------------------------------------------------------------------
def knob_value(node, name: str):
    """A knob's value (a tuple for XY knobs)."""
    knob = node[name]
    if knob.Class() == "XY_Knob":
        return (knob.value(0), knob.value(1))
    return knob.value()


def _interpolation(key) -> str:
    # USER_SET_SLOPE is a flag bit; only a plain LINEAR key is "linear".
    return LINEAR if key.interpolation == nuke.LINEAR else f"nuke:{key.interpolation}"


def knob_curves(node, name: str) -> list:
    """One :class:`Curve` per index of an animated knob (None where not animated)."""
    knob = node[name]
    if not knob.isAnimated():
        return []
    size = 2 if knob.Class() == "XY_Knob" else 1
    curves = []
    for i in range(size):
        curve = knob.animation(i)
        if curve is None:
            curves.append(None)
            continue
        keys = tuple((float(k.x), float(k.y), _interpolation(k)) for k in curve.keys())
        curves.append(Curve(keys, curve.evaluate))
    return curves


def set_value(node, name: str, value) -> None:
    node[name].setValue(value)


def format_height(node) -> int:
    """Height of the node's input format (the picker's y flip)."""
    source = node.input(0) or node
    return int(source.format().height())


def input_connected(node, index: int) -> bool:
    return node.input(index) is not None


# -- the graph inside -----------------------------------------------------------------------------
def render_input(node, pattern: str, first: int, last: int, with_matte: bool) -> None:
    """Render the node's input (and the matte into mask.a) through the hidden Write."""
    node.begin()
    try:
        nuke.toNode(MATTE_COPY)["disable"].setValue(not with_matte)
        write = nuke.toNode(WRITE)
        write["file"].setValue(pattern)
        nuke.execute(write, first, last, 1)
    finally:
        node.end()


def show_result(node, pattern: str | None, first: int, last: int) -> None:
    """Point the group's Read (its output) at the result frames and reload them."""
    node.begin()
    try:
        read = nuke.toNode(READ)
        read["file"].setValue(pattern or "")
        for knob in ("first", "origfirst"):
            read[knob].setValue(first)
        for knob in ("last", "origlast"):
            read[knob].setValue(last)
        read["reload"].execute()
    finally:
        node.end()


# -- long work --------------------------------------------------------------------------------------
class Progress:
    """A nuke.ProgressTask: percent, message, and whether the user pressed Cancel."""

    def __init__(self, title: str) -> None:
        self._task = nuke.ProgressTask(title)

    def update(self, percent: int, text: str) -> None:
        self._task.setProgress(int(percent))
        self._task.setMessage(text)

    def cancelled(self) -> bool:
        return bool(self._task.isCancelled())

    def close(self) -> None:
        self._task = None  # the task closes when Nuke's object is released


def in_main_thread(call: Callable, *args) -> None:
    """Run ``call(*args)`` on Nuke's main thread and return at once."""
    nuke.executeInMainThread(call, args)


# -- preferences ------------------------------------------------------------------------------------
def preferences_panel(values: dict, overridden: list, transfers) -> dict | None:
    """Ask for endpoint, token, cache folder and transfer; None if the user cancelled."""
    note = f" (set by the environment: {', '.join(overridden)})" if overridden else ""
    panel = nuke.Panel(f"FocusPull preferences{note}")
    panel.addSingleLineInput("endpoint", values["endpoint"])
    panel.addPasswordInput("token", values["token"])
    panel.addSingleLineInput("cache", values["cache"])
    panel.addEnumerationPulldown("transfer", " ".join([values["transfer"]] +
                                                      [t for t in transfers if t != values["transfer"]]))
    if not panel.show():
        return None
    return {key: panel.value(key) for key in ("endpoint", "token", "cache", "transfer")}
