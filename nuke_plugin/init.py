# FocusPull for Nuke: runs at start-up (GUI and `nuke -t`) when this folder is on NUKE_PATH.
# Puts the client's dependencies and the focuspull package on sys.path; menu.py adds the menus.
#   FOCUSPULL_SITE    a `pip install --target` folder with numpy, pyzmq, msgpack (and focuspull)
#   FOCUSPULL_SERVER  a focuspull checkout's server/ folder (when focuspull is not pip-installed)
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
for _path in (os.environ.get("FOCUSPULL_SITE"), os.path.join(_here, "site-packages"),
              os.environ.get("FOCUSPULL_SERVER"), os.path.join(os.path.dirname(_here), "server"), _here):
    if _path and os.path.isdir(_path) and _path not in sys.path:
        sys.path.append(_path)
