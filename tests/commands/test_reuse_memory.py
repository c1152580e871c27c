"""`focuspull render` keeps freed frame-sized blocks for the next frame (commands/cli.py,
reuse_freed_memory): a second frame-sized buffer costs no page faults."""
import os
import subprocess
import sys

import pytest

CODE = """
import ctypes, resource, sys
from focuspull.commands.cli import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "on" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 1080 * 1920 * 5 * 4  # a 1080p frame buffer as torch allocates it (malloc, no huge pages)
def touch():
    p = libc.malloc(SIZE)
    ctypes.memset(p, 1, SIZE)
    libc.free(p)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    out = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, env=env, timeout=120)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_a_second_frame_buffer_reuses_the_first_instead_of_faulting_it_in_again():
    applied, reused = _faults("on")
    _, fresh = _faults("off")
    assert applied
    pages = 1080 * 1920 * 5 * 4 // 4096  # 10,125 pages of 4 KiB
    assert fresh > pages // 2  # glibc's default: unmapped when freed, faulted in again
    assert reused < pages // 10
