"""The read-ahead and write-behind of a render (focuspull.pipeline.overlap): the I/O overlaps
the rendering, and every guarantee of a frame-by-frame run still holds -- a frame is reported
only once it is whole on disk, in order; a failed write or read fails the job naming the frame
and nothing after it is written; no temp file and no thread is left behind."""
import errno
import os
import threading

import numpy as np
import pytest

from focuspull.errors import Cancelled, SequenceError
from focuspull.io import atomic
from focuspull.io.images import is_complete_frame
from focuspull.pipeline import clip as clip_module
from focuspull.pipeline.overlap import ReadAhead, WriteBehind
from focuspull.pipeline.run import run_job
from test_pipeline import job_for, make_sequence, pixels


def _io_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith(("focuspull-read", "focuspull-write"))]


def _run(tmp_path, frames=range(1, 7), **kwargs):
    pattern = make_sequence(tmp_path / "in", frames=frames)
    out = tmp_path / "out"
    events = []
    return pattern, out, events, lambda: run_job(job_for(pattern, str(out / "o.####.exr")),
                                                 on_event=events.append, **kwargs)


def test_every_frame_is_reported_in_order_and_only_once_it_is_whole_on_disk(tmp_path):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 7))
    seen = []

    def on_event(event):
        # At the moment of its event the frame is complete on disk (not still being written).
        seen.append((event["frame"], event["done"], is_complete_frame(event["path"])))

    result = run_job(job_for(pattern, str(tmp_path / "out" / "o.####.exr")), on_event=on_event)
    assert seen == [(f, f, True) for f in range(1, 7)]
    assert result.rendered == list(range(1, 7))
    assert result.written == [str(tmp_path / "out" / f"o.{f:04d}.exr") for f in range(1, 7)]
    assert _io_threads() == []


def test_overlapped_run_equals_frame_by_frame_renders(tmp_path):
    # Each frame rendered on its own (nothing read ahead, nothing behind) gives the same pixels.
    pattern = make_sequence(tmp_path / "in", frames=range(1, 5))
    run_job(job_for(pattern, str(tmp_path / "all" / "o.####.exr")))
    for f in range(1, 5):
        run_job(job_for(pattern, str(tmp_path / "one" / "o.####.exr"), frames=[f]))
        np.testing.assert_array_equal(pixels(tmp_path / "all" / f"o.{f:04d}.exr"),
                                      pixels(tmp_path / "one" / f"o.{f:04d}.exr"))


def test_a_write_failing_on_frame_3_fails_the_job_naming_it_and_nothing_after_is_written(tmp_path, monkeypatch):
    real_fsync = atomic.fsync_path

    def fsync(path):  # the disk fills up while frame 3 is being written
        if os.path.basename(path).startswith(".o.0003.exr."):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(path)

    monkeypatch.setattr(atomic, "fsync_path", fsync)
    _, out, events, run = _run(tmp_path)
    with pytest.raises(SequenceError) as info:
        run()
    assert info.value.message.startswith("frame 3: writing ") and "No space left on device" in info.value.message
    assert "'output.resume'" in info.value.hint
    assert [e["frame"] for e in events] == [1, 2]  # frame 4 was rendered but never written nor reported
    assert sorted(os.listdir(out)) == ["o.0001.exr", "o.0002.exr"]  # no temp, nothing after frame 3
    assert _io_threads() == []


def test_a_read_failing_on_frame_4_fails_the_job_naming_its_file(tmp_path, monkeypatch):
    real_read = clip_module.read_image
    readers = []

    def read_image(path, **kwargs):
        readers.append((os.path.basename(path), threading.current_thread().name))
        if path.endswith("shot.0004.exr"):
            raise SequenceError(f"cannot read the pixels of {path}: truncated", "re-render or re-copy it")
        return real_read(path, **kwargs)

    monkeypatch.setattr(clip_module, "read_image", read_image)
    _, out, events, run = _run(tmp_path)
    with pytest.raises(SequenceError, match=r"shot\.0004\.exr"):
        run()
    # The read-ahead met the bad frame first; the render's own read raised it.
    assert ("shot.0004.exr", "MainThread") in readers
    assert any(name == "shot.0004.exr" and thread.startswith("focuspull-read") for name, thread in readers)
    assert [e["frame"] for e in events] == [1, 2, 3]  # frame 3's write finished before the error went up
    assert sorted(os.listdir(out)) == ["o.0001.exr", "o.0002.exr", "o.0003.exr"]
    assert _io_threads() == []


def test_each_frame_is_decoded_once_and_ahead_of_its_render(tmp_path, monkeypatch):
    real_read = clip_module.read_image
    reads = []

    def read_image(path, **kwargs):
        reads.append((os.path.basename(path), threading.current_thread().name))
        return real_read(path, **kwargs)

    monkeypatch.setattr(clip_module, "read_image", read_image)
    _, _, events, run = _run(tmp_path)
    run()
    assert sorted(name for name, _ in reads) == [f"shot.{f:04d}.exr" for f in range(1, 7)]  # no frame twice
    ahead = [name for name, thread in reads if thread.startswith("focuspull-read")]
    assert ahead == [f"shot.{f:04d}.exr" for f in range(2, 7)]  # all but the first came from the read-ahead


def test_cancel_while_a_frame_is_written_finishes_that_frame_and_stops(tmp_path):
    pattern = make_sequence(tmp_path / "in2", frames=range(1, 7))
    events = []
    with pytest.raises(Cancelled):
        run_job(job_for(pattern, str(tmp_path / "out2" / "o.####.exr")), on_event=events.append,
                cancelled=lambda: len(events) >= 1)
    # Frame 2 was being written when the cancel was seen: finished, reported, nothing else started.
    assert [e["frame"] for e in events] == [1, 2]
    assert sorted(os.listdir(tmp_path / "out2")) == ["o.0001.exr", "o.0002.exr"]
    assert _io_threads() == []


def test_write_behind_holds_one_write_at_a_time():
    writer = WriteBehind()
    gate = threading.Event()
    try:
        writer.start(1, "a", lambda: gate.wait() and "a")
        with pytest.raises(RuntimeError, match="in flight"):
            writer.start(2, "b", lambda: "b")
        gate.set()
        assert writer.finish() == (1, "a")
        assert writer.finish() is None
    finally:
        gate.set()
        writer.close()


def test_write_behind_names_the_frame_of_an_unexpected_error():
    writer = WriteBehind()
    try:
        writer.start(7, "out.0007.exr", lambda: 1 / 0)
        with pytest.raises(SequenceError, match=r"^frame 7: writing out\.0007\.exr failed"):
            writer.finish()
    finally:
        writer.close()


class _GatedClip:
    def __init__(self):
        self.gate, self.started, self.asked = threading.Event(), threading.Event(), []

    def prefetch(self, frame):
        self.asked.append(frame)
        self.started.set()
        self.gate.wait()


def test_read_ahead_keeps_at_most_one_read_in_flight():
    clip = _GatedClip()
    reader = ReadAhead(clip)
    try:
        reader.ahead(2)
        assert clip.started.wait(30)
        second = threading.Thread(target=reader.ahead, args=(3,))
        second.start()
        second.join(0.5)
        # Frame 2 is still being read: asking for 3 waits for it instead of queueing a second read.
        assert second.is_alive() and clip.asked == [2]
        clip.gate.set()
        second.join(30)
        reader.close()
        assert clip.asked == [2, 3]
    finally:
        clip.gate.set()
        reader.close()


def test_a_frame_being_read_ahead_is_waited_for_not_read_twice(tmp_path, monkeypatch):
    pattern = make_sequence(tmp_path / "in", frames=range(1, 3))
    started, release = threading.Event(), threading.Event()
    calls = []
    real_read = clip_module.read_image

    def slow_read(path, **kwargs):
        calls.append(os.path.basename(path))
        started.set()
        release.wait()
        return real_read(path, **kwargs)

    clip = clip_module.DiskClip(job_for(pattern, str(tmp_path / "o.####.exr")))
    monkeypatch.setattr(clip_module, "read_image", slow_read)
    reader = ReadAhead(clip)
    try:
        reader.ahead(2)
        assert started.wait(30)
        got = []
        main = threading.Thread(target=lambda: got.append(clip.colour(2)), name="renderer")
        main.start()
        release.set()
        main.join(30)
        reader.close()
    finally:
        release.set()
        reader.close()
    assert calls == ["shot.0002.exr"]
    assert got[0] is clip.colour(2)  # one decoded array, shared


def test_depth_to_disparity_of_the_next_frame_runs_on_the_reader_thread_once(tmp_path, monkeypatch):
    from focuspull.pipeline import run as run_module

    real = run_module.disparity_from_depth
    threads = []

    def disparity_from_depth(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "disparity_from_depth", disparity_from_depth)
    _, _, events, run = _run(tmp_path)
    run()
    ahead = [t for t in threads if t.startswith("focuspull-read")]
    # 6 preflight checks (main thread), then one per render: frame 1 on the main thread, 2-6 ahead.
    assert len(threads) == 12 and len(ahead) == 5
    assert [e["frame"] for e in events] == list(range(1, 7))
