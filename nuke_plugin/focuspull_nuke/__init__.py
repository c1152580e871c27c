"""focuspull inside Nuke: the FocusPull node.

Every ``nuke.*`` call lives in :mod:`focuspull_nuke.host` (the one adapter); the rest is
plain Python over :mod:`focuspull.client` and :mod:`focuspull.spec` (no torch, no
OpenImageIO), so it is tested outside Nuke with a recording stand-in of those calls.

* :mod:`.knobs` -- the knob table, generated from the job's field registry;
* :mod:`.mapping` -- knob values and animation curves -> the job map;
* :mod:`.cache` -- where frames go, keyed by a hash of the job and the input pixels;
* :mod:`.exr` -- a small EXR codec for the in-band path;
* :mod:`.node` -- the node: Render / Cancel / server status / Send to farm, ``nuke -t``;
* :mod:`.settings` -- endpoint, token, cache folder (environment > preferences > default).
"""
NODE_CLASS = "FocusPull"
