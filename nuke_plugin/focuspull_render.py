"""Render a FocusPull node's range from the command line, with the CLI's exit codes:

    nuke -t /path/to/nuke_plugin/focuspull_render.py shot.nk FocusPull1 [FIRST LAST]

0 done, 2 bad knob / input (the message names the knob), 3 render or server failure,
130 cancelled or interrupted.  Needs this folder on NUKE_PATH (init.py sets sys.path).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    if len(argv) not in (2, 4):
        sys.stderr.write(__doc__)
        return 2
    from focuspull_nuke import host, node

    host.open_script(argv[0])
    first, last = (int(argv[2]), int(argv[3])) if len(argv) == 4 else (None, None)
    return node.render_batch(argv[1], first, last)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
