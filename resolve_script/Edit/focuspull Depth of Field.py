"""focuspull - depth of field on the timeline clip under the playhead (Edit page).

Copy to the Fusion Scripts folder's Edit/ subfolder (see docs/resolve.md); it then appears
under Workspace > Scripts > Edit.  Resolve provides ``resolve`` (or ``app``) and ``bmd``.
"""
import os
import sys


def _lib_dirs():
    """Where the torch-free client install lives: $FOCUSPULL_RESOLVE_LIB, else the default."""
    env = os.environ.get("FOCUSPULL_RESOLVE_LIB")
    if env:
        return [d for d in env.split(os.pathsep) if d]
    if sys.platform.startswith("win"):
        return [os.path.join(os.environ.get("APPDATA", os.path.expanduser("~")), "focuspull", "resolve")]
    return [os.path.expanduser("~/.focuspull/resolve")]


for _d in reversed(_lib_dirs()):
    if os.path.isdir(_d) and _d not in sys.path:
        sys.path.insert(0, _d)


try:
    from focuspull_resolve import host as _host
except ImportError:
    print("focuspull: focuspull_resolve is not installed in %s; see docs/resolve.md" % _lib_dirs())
    raise
try:
    from focuspull_resolve import edit_page
except ImportError as _exc:
    _host.ResolveHost(_host.resolve_from_globals(globals()), bmd).ui.message(  # noqa: F821
        "focuspull", "The focuspull client is not installed for Resolve's Python (%s).\n\nInstall it into %s as "
                     "docs/resolve.md says, then run again." % (_exc, os.pathsep.join(_lib_dirs())))
else:
    edit_page.main(_host.resolve_from_globals(globals()), bmd)  # noqa: F821
