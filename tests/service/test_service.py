"""The render server as a real process on 127.0.0.1, driving the real pipeline.

Every test talks to ``python -m focuspull.commands.cli serve`` over TCP with real files under
tmp_path as the server root, and compares with ``focuspull.pipeline.run.run_job`` called
directly in this process.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import OpenImageIO as oiio
import pytest
import zmq

from focuspull import protocol
from focuspull.errors import Cancelled, JobSpecError, PathPolicyError, ProtocolError, SequenceError
from focuspull.spec.job import RenderJob
from focuspull.pipeline.run import run_job
from focuspull.errors import AuthError, InputError, ServiceUnavailable, UnknownJob
from test_service_support import inband_job, start_server, tiny_clip  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(120)


# -- helpers ----------------------------------------------------------------------------------
def write_plate(directory, frames, h=24, w=32, seed=1):
    """An RGBA+Z EXR sequence plate.####.exr (Z = metres, 1..6)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for f in frames:
        px = np.empty((h, w, 5), np.float32)
        px[..., :4] = rng.random((h, w, 4))
        px[..., :3] *= px[..., 3:4]
        px[..., 4] = np.linspace(1.0, 6.0, h * w, dtype=np.float32).reshape(h, w)
        spec = oiio.ImageSpec(w, h, 5, oiio.FLOAT)
        spec.channelnames = ("R", "G", "B", "A", "Z")
        path = str(directory / f"plate.{f:04d}.exr")
        out = oiio.ImageOutput.create(path)
        assert out.open(path, spec), oiio.geterror()
        out.write_image(px)
        out.close()
    return str(directory / "plate.####.exr")


def read_exr(path):
    inp = oiio.ImageInput.open(str(path))
    assert inp, oiio.geterror()
    try:
        return inp.read_image(oiio.FLOAT)
    finally:
        inp.close()


def disk_job(src, out, frames, **output):
    return {"input": {"pattern": src}, "frames": list(frames),
            "lens": {"mode": "physical", "focal_length_mm": 50.0, "fstop": 1.4},
            "focus": {"mode": "distance", "distance_m": 2.0},
            "output": {"pattern": out, "half": False, **output}}


def frame_files(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- round trips -------------------------------------------------------------------------------
def test_inband_round_trip_equals_run_job_and_reports_progress(start_server):
    srv = start_server()
    clip = tiny_clip([5, 6, 7])
    job = inband_job([5, 6, 7])
    expected = run_job(RenderJob.from_dict(job), inband=clip).frames
    with srv.client() as c:
        info = c.hello("pytest")
        assert info["protocol"] == protocol.PROTOCOL_VERSION and info["devices"] == ["cpu"]
        assert "render" in info["stages"] and info["limits"]["max_frames"] == 10_000
        handle = c.submit(job, inband=clip)
        events = list(handle)
        got = handle.result()
    assert [e["frame"] for e in events] == [5, 6, 7]
    assert [e["done"] for e in events] == [1, 2, 3] and all(e["total"] == 3 for e in events)
    assert sorted(got) == [5, 6, 7] and handle.rendered == [5, 6, 7] and handle.skipped == []
    for f in got:
        assert got[f].dtype == np.float32 and got[f].shape == clip[f]["rgba"].shape
        np.testing.assert_array_equal(got[f], expected[f])
    assert not np.allclose(got[5], clip[5]["rgba"])  # it did blur: not an echo


def test_inband_frames_need_no_depth_when_a_model_makes_it(start_server, tmp_path):
    # A host without a depth pass (Resolve's Edit page) sends only the pictures.
    import torch

    from focuspull.stages.depth.sources import TinyDepthNet

    torch.manual_seed(0)
    TinyDepthNet({"width": 4, "blocks": 1}).save_pretrained(str(tmp_path / "model"))
    clip = {f: {"rgba": frame["rgba"]} for f, frame in tiny_clip([1, 2]).items()}
    job = {**inband_job([1, 2]), "lens": {"mode": "artistic", "size_px": 3.0}, "focus": {"mode": "point", "point_x": 8, "point_y": 6},
           "depth": {"kind": "model", "model": "tiny", "checkpoint_dir": str(tmp_path / "model")}}
    expected = run_job(RenderJob.from_dict(job), inband=clip).frames
    srv = start_server("--root", str(tmp_path))  # where the server may read the checkpoint
    with srv.client() as c:
        got = c.submit(job, inband=clip).result()
        for f in (1, 2):
            np.testing.assert_array_equal(got[f], expected[f])
        # Without a model the depth is still required, and the error says so.
        with pytest.raises(InputError, match="depth must be H x W"):
            c.submit(inband_job([1, 2]), inband=clip).result()


def test_path_round_trip_writes_the_same_frames_as_run_job(start_server, tmp_path):
    root = tmp_path / "root"
    src = write_plate(root / "in", [1, 2])
    srv = start_server("--root", str(root))
    with srv.client() as c:
        handle = c.submit(disk_job("in/plate.####.exr", "out/dof.####.exr", [1, 2]))  # relative to root
        paths = [e["path"] for e in handle]
        assert handle.result() == {}
    assert paths == [str(root / "out" / "dof.0001.exr"), str(root / "out" / "dof.0002.exr")]
    run_job(RenderJob.from_dict(disk_job(src, str(tmp_path / "direct" / "dof.####.exr"), [1, 2])))
    for f in (1, 2):
        served = read_exr(root / "out" / f"dof.{f:04d}.exr")
        direct = read_exr(tmp_path / "direct" / f"dof.{f:04d}.exr")
        np.testing.assert_array_equal(served, direct)


def test_eight_concurrent_clients_all_get_their_own_correct_frames(start_server):
    srv = start_server()
    clips = {i: tiny_clip([1, 2], h=10, w=12, seed=100 + i) for i in range(8)}
    jobs = {i: inband_job([1, 2], fstop=1.4 + 0.2 * i) for i in range(8)}
    results, failures = {}, []

    def one(i):
        try:
            with srv.client(timeout_s=60) as c:
                results[i] = c.submit(jobs[i], inband=clips[i]).result()
        except Exception as exc:  # reported below with the client number
            failures.append((i, exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not failures and sorted(results) == list(range(8))
    for i in range(8):
        expected = run_job(RenderJob.from_dict(jobs[i]), inband=clips[i]).frames
        for f in (1, 2):
            np.testing.assert_array_equal(results[i][f], expected[f])


# -- refusals -----------------------------------------------------------------------------------
def test_bad_jobs_and_path_escapes_are_refused_and_the_server_keeps_serving(start_server, tmp_path):
    root = tmp_path / "root"
    write_plate(root / "in", [1])
    (tmp_path / "outside").mkdir()
    (root / "in" / "escape").symlink_to(tmp_path / "outside")
    srv = start_server("--root", str(root))
    with srv.client() as c:
        with pytest.raises(JobSpecError, match="unknown job field 'color'"):
            c.submit({"color": 1})
        for src, out in [("../plate.####.exr", "out/x.####.exr"),
                         (str(tmp_path / "outside" / "p.####.exr"), "out/x.####.exr"),
                         ("in/plate.####.exr", str(tmp_path / "outside" / "x.####.exr")),
                         ("in/plate.####.exr", "in/escape/x.####.exr")]:
            with pytest.raises(PathPolicyError) as info:
                c.submit(disk_job(src, out, [1]))
            assert info.value.hint  # says where files may go
        # A job the pipeline refuses (frame 9 was not sent) fails alone.
        with pytest.raises(SequenceError):
            c.submit(inband_job([1, 9]), inband=tiny_clip([1])).result()
        with pytest.raises(UnknownJob):
            c.cancel("no-such-job")
        assert c.ping() < 5
    assert not list((tmp_path / "outside").iterdir())


def test_symlinks_out_of_the_roots_are_refused_in_odd_dirs_and_checkpoints(start_server, tmp_path):
    root = tmp_path / "root"
    write_plate(root / "plain", [1])
    (tmp_path / "outside").mkdir()
    write_plate(tmp_path / "outside", [1])
    (root / "[s]").mkdir()
    (root / "[s]" / "plate.0001.exr").symlink_to(tmp_path / "outside" / "plate.0001.exr")
    (root / "ckpt").mkdir()
    (root / "ckpt" / "config.json").symlink_to(tmp_path / "outside" / "plate.0001.exr")
    srv = start_server("--root", str(root))
    with srv.client() as c:
        with pytest.raises(PathPolicyError, match="plate.0001.exr"):
            c.submit(disk_job("[s]/plate.####.exr", "[s]/out.####.exr", [1]))
        job = disk_job("plain/plate.####.exr", "plain/out.####.exr", [1])
        job["depth"] = {"kind": "model", "model": "tiny", "checkpoint_dir": "ckpt"}
        job["lens"] = {"mode": "artistic", "size_px": 4.0}
        job["focus"] = {"mode": "point", "point_x": 8, "point_y": 8}
        with pytest.raises(PathPolicyError, match="config.json"):
            c.submit(job)
        assert c.ping() < 5
    assert frame_files(root / "[s]") == ["plate.0001.exr"]  # nothing rendered


def test_auth_token_is_checked_on_every_message(start_server):
    srv = start_server("--token", "open-sesame")
    # The default client timeout: a refusal is an answer, and a loaded machine may take a while
    # to give it (5 s here once timed out beside a training job: a TimeoutError, not AuthError).
    with srv.client() as c:
        with pytest.raises(AuthError, match="carried none"):
            c.ping()
    with srv.client(token="wrong") as c:
        with pytest.raises(AuthError, match="wrong auth token"):
            c.status()
    with srv.client(token="open-sesame") as c:
        assert c.ping() < 5
        assert c.submit(inband_job([1]), inband=tiny_clip([1])).result()[1].shape == (12, 16, 4)
    open_srv = start_server()
    with open_srv.client(token="open-sesame") as c:
        with pytest.raises(AuthError, match="takes no auth token"):
            c.ping()


def _vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def test_a_peer_without_the_token_cannot_make_the_server_buffer_its_messages(start_server):
    srv = start_server("--token", "open-sesame", "--max-message-mb", "1")
    with srv.client(token="open-sesame") as c:
        c.ping()
    before = _vm_hwm_kib(srv.proc.pid)
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.setsockopt(zmq.SNDTIMEO, 2000)  # a refused handshake can leave it nowhere to send
    raw.connect(srv.endpoint)
    try:
        chunk = memoryview(bytes(1_000_000))  # each frame under the 1 MiB per-frame limit
        header = protocol.encode("ping", {"id": "x"})[0]
        for _ in range(3):  # 3 messages of 100 MB (the same buffer: cheap for this process)
            try:
                raw.send_multipart([header] + [chunk] * 100, copy=False)
            except zmq.Again:
                break  # no pipe to the server: nothing of it can be buffered there either
        got = []  # replies, had the server read the messages
        deadline = time.monotonic() + 4.0
        while len(got) < 3 and time.monotonic() < deadline:
            if raw.poll(200):
                got.append(raw.recv_multipart())
    finally:
        raw.close()
    grown_mib = (_vm_hwm_kib(srv.proc.pid) - before) / 1024
    assert got == [] and grown_mib < 50, (got[:1], grown_mib)
    with srv.client(token="open-sesame") as c:
        assert c.ping() < 5  # still serving


def test_a_peer_without_the_token_cannot_take_over_a_clients_job_stream(start_server):
    srv = start_server("--token", "open-sesame", "--log-level", "debug")
    clip = tiny_clip(range(1, 21), h=96, w=128)
    with srv.client(token="open-sesame", timeout_s=5) as victim:
        handle = victim.submit(inband_job(range(1, 21)), inband=clip)
        thief = zmq.Context.instance().socket(zmq.DEALER)
        thief.setsockopt(zmq.LINGER, 0)
        thief.setsockopt(zmq.ROUTING_ID, victim._identity)  # learnt from a log, say
        thief.connect(srv.endpoint)
        try:
            stolen = []
            for event in handle:  # the victim keeps reading (and heartbeating)
                while thief.poll(0):
                    stolen.append(thief.recv_multipart())
            while thief.poll(500):
                stolen.append(thief.recv_multipart())
        finally:
            thief.close()
        assert stolen == []
        assert sorted(handle.result()) == list(range(1, 21)) and handle.rendered == list(range(1, 21))
    log = srv.log()
    assert victim._identity.hex() not in log and "open-sesame" not in log  # even at debug level


def test_oversized_messages_are_refused(start_server):
    srv = start_server("--max-message-mb", "1")
    big = tiny_clip([1], h=400, w=400)  # 2.5 MB of RGBA
    with srv.client() as c:
        with pytest.raises(ProtocolError, match="exceeds the server limit"):
            c.submit(inband_job([1]), inband=big)  # refused before sending
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(srv.endpoint)
    try:
        # Many frames each under the per-frame limit, over 1 MiB together: an error reply.
        chunk = np.zeros((300, 300), np.uint8)
        frames = protocol.encode("submit", {"id": "big", "job": {}, "echo": True,
                                            "inband": [{"frame": i, "rgba": 0, "depth": 1} for i in range(1)]},
                                 [chunk] * 16)
        raw.send_multipart(frames)
        assert raw.poll(10_000)
        reply = protocol.decode(raw.recv_multipart(), expect=protocol.SERVER_TYPES)
        assert reply.type == "error" and reply.fields["code"] == "bad_message"
        assert "exceeds the limit" in reply.fields["message"]
        # One frame over the limit: ZeroMQ drops the connection before buffering it.
        raw.send_multipart([protocol.encode("ping", {"id": "p"})[0], bytes(2 * 2**20)])
        assert not raw.poll(1500)
    finally:
        raw.close()
    with srv.client() as c:
        assert c.ping() < 5  # still serving


# -- cancel, client loss, shutdown, crash + resume ------------------------------------------------
def test_cancel_mid_job_leaves_only_complete_frames(start_server, tmp_path):
    root = tmp_path / "root"
    write_plate(root / "in", range(1, 41), h=48, w=64)
    srv = start_server("--root", str(root))
    with srv.client() as c:
        handle = c.submit(disk_job("in/plate.####.exr", "out/dof.####.exr", range(1, 41)))
        it = iter(handle)
        first = next(it)
        assert handle.cancel() in ("running", "cancelled")
        with pytest.raises(Cancelled):
            for _ in it:
                pass
    names = frame_files(root / "out")
    assert f"dof.{first['frame']:04d}.exr" in names
    assert 1 <= len(names) < 40, names  # it stopped early
    assert all(n.startswith("dof.") and n.endswith(".exr") for n in names), names  # no temp files
    for n in names:
        assert read_exr(root / "out" / n).shape == (48, 64, 5)  # every file complete


def test_a_vanished_client_gets_its_job_cancelled(start_server, tmp_path):
    # A job that cannot finish before the client timeout on any machine: 2000 frames (hard
    # links to one plate, so cheap to make), against a 1.5 s timeout.  The test waits on the
    # job's state, never on a sleep racing the renderer.
    root = tmp_path / "root"
    write_plate(root / "in", [1], h=96, w=128)
    for f in range(2, 2001):
        os.link(root / "in" / "plate.0001.exr", root / "in" / f"plate.{f:04d}.exr")
    srv = start_server("--root", str(root), "--client-timeout-s", "1.5")
    c = srv.client()
    job_id = c.submit(disk_job("in/plate.####.exr", "out/dof.####.exr", range(1, 2001))).id
    c.close()  # gone without a word: no more heartbeats
    with srv.client() as watcher:
        deadline = time.monotonic() + 100  # only a failure waits this long
        state = None
        while time.monotonic() < deadline:
            state = next(j["state"] for j in watcher.jobs() if j["job"] == job_id)
            if state in ("done", "failed", "cancelled"):
                break  # a finished state never changes again: no point waiting
            time.sleep(0.1)
    assert state == "cancelled"
    assert len(frame_files(root / "out")) < 2000


def test_sigterm_cancels_cleanly_and_exits_zero(start_server, tmp_path):
    root = tmp_path / "root"
    write_plate(root / "in", range(1, 41), h=48, w=64)
    srv = start_server("--root", str(root))
    with srv.client() as c:
        handle = c.submit(disk_job("in/plate.####.exr", "out/dof.####.exr", range(1, 41)))
        it = iter(handle)
        next(it)
        srv.proc.terminate()  # one SIGTERM; the helper's terminate() would send a second one
        with pytest.raises(Cancelled):
            for _ in it:
                pass
    assert srv.wait() == 0
    names = frame_files(root / "out")
    assert 1 <= len(names) < 40
    for n in names:
        assert n.startswith("dof.") and read_exr(root / "out" / n).shape == (48, 64, 5)
    assert "server stopped" in srv.log()


def test_kill_9_is_noticed_within_the_timeout_and_resume_skips_finished_frames(start_server, tmp_path):
    root = tmp_path / "root"
    write_plate(root / "in", range(1, 31), h=48, w=64)
    job = disk_job("in/plate.####.exr", "out/dof.####.exr", range(1, 31), resume=True)
    srv = start_server("--root", str(root))
    done = []
    with srv.client(timeout_s=2.0) as c:
        handle = c.submit(job)
        it = iter(handle)
        done += [next(it)["frame"] for _ in range(3)]
        srv.proc.kill()
        srv.proc.wait(10)  # reaped: a zombie's pid still looks alive and would keep its temp files
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="went silent"):
            for event in it:
                done.append(event["frame"])
        noticed_s = time.monotonic() - t0
    assert noticed_s < 2.0 + 3.0, noticed_s  # within the client timeout (plus generous slack)
    # A frame can be on disk without its event having reached the client (killed between the
    # rename and the send): what resume must skip is what is on disk, which holds every reported one.
    on_disk = sorted(int(n.split(".")[1]) for n in frame_files(root / "out") if n.startswith("dof."))
    assert set(done) <= set(on_disk)
    done = on_disk
    before = {f: os.stat(root / "out" / f"dof.{f:04d}.exr") for f in done}

    srv2 = start_server("--root", str(root))
    with srv2.client() as c:
        handle = c.submit(job)
        rendered = [e["frame"] for e in handle]
    assert handle.rendered == rendered and sorted(handle.skipped) == sorted(done)
    assert set(rendered).isdisjoint(done) and sorted(rendered + done) == list(range(1, 31))
    for f, st in before.items():
        now = os.stat(root / "out" / f"dof.{f:04d}.exr")
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert sorted(n for n in frame_files(root / "out")) == [f"dof.{f:04d}.exr" for f in range(1, 31)]
