"""Server configuration precedence, the bind/token rule, path policy and the fair queue."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from focuspull.errors import InputError, PathPolicyError, ServerBusy
from focuspull.service.config import OPTIONS, ServerConfig, is_loopback, load_file, resolve
from focuspull.service.jobs import FairQueue, Job
from focuspull.service.paths import PathPolicy

REPO = Path(__file__).resolve().parents[2]


# -- configuration ------------------------------------------------------------------------
def test_precedence_cli_over_env_over_file_over_default():
    file = {"max_queued": 3, "max_frames": 30, "heartbeat_s": 0.5}
    env = {"FOCUSPULL_MAX_QUEUED": "2", "FOCUSPULL_MAX_FRAMES": "20"}
    cli = {"max_queued": 1, "max_frames": None}
    cfg = resolve(cli, env, file)
    assert cfg.max_queued == 1  # CLI wins
    assert cfg.max_frames == 20  # env beats file when the CLI is silent
    assert cfg.heartbeat_s == 0.5  # file beats default
    assert cfg.client_timeout_s == ServerConfig().client_timeout_s  # default
    assert resolve({}, {}, {}) == ServerConfig()


def test_roots_from_env_are_pathsep_separated_and_cli_roots_replace_them(tmp_path):
    env = {"FOCUSPULL_ROOTS": os.pathsep.join(["/a", "/b"])}
    assert resolve({}, env, {}).roots == ("/a", "/b")
    assert resolve({"roots": ["/c"]}, env, {}).roots == ("/c",)


def test_config_file_toml_with_serve_table(tmp_path):
    p = tmp_path / "fp.toml"
    p.write_text('[serve]\nmax_queued = 7\nroots = ["/data"]\n')
    assert resolve({}, {}, load_file(p)).max_queued == 7
    p.write_text("max_qeued = 7\n")  # typo: must not silently fall back to the default
    with pytest.raises(InputError, match="unknown key"):
        resolve({}, {}, load_file(p))
    with pytest.raises(InputError, match="cannot read config file"):
        load_file(tmp_path / "missing.toml")


def test_bad_values_name_the_source_and_the_option():
    with pytest.raises(InputError, match="--max-queued from the FOCUSPULL_MAX_QUEUED"):
        resolve({}, {"FOCUSPULL_MAX_QUEUED": "many"}, {})
    with pytest.raises(InputError, match="positive"):
        resolve({"max_frames": 0}, {}, {})
    with pytest.raises(InputError, match="--log-level from the config file"):
        resolve({}, {}, {"log_level": "chatty"})


def test_config_is_frozen():
    cfg = ServerConfig()
    with pytest.raises(Exception):
        cfg.max_queued = 5  # type: ignore[misc]


@pytest.mark.parametrize("endpoint, loop", [
    ("tcp://127.0.0.1:5690", True), ("tcp://127.3.4.5:1", True), ("tcp://localhost:1", True),
    ("tcp://[::1]:5690", True), ("ipc:///tmp/fp", True), ("tcp://0.0.0.0:5690", False),
    ("tcp://*:5690", False), ("tcp://10.0.0.3:5690", False), ("tcp://eth0:5690", False)])
def test_loopback_detection(endpoint, loop):
    assert is_loopback(endpoint) is loop


def test_non_loopback_bind_needs_a_token():
    with pytest.raises(InputError, match="no auth token") as info:
        resolve({"bind": "tcp://0.0.0.0:5690"}, {}, {})
    assert "--token" in info.value.hint
    assert resolve({"bind": "tcp://0.0.0.0:5690"}, {"FOCUSPULL_TOKEN": "s"}, {}).token == "s"


def test_serve_refuses_to_start_on_a_public_address_without_a_token():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOCUSPULL_")}
    env["PYTHONPATH"] = str(REPO / "server")
    proc = subprocess.run([sys.executable, "-m", "focuspull.commands.serve", "--bind", "tcp://0.0.0.0:5999"],
                          capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 2
    assert "refusing to listen on tcp://0.0.0.0:5999" in proc.stderr
    assert "--token" in proc.stderr


def test_every_option_has_a_config_field_and_an_env_name():
    fields = set(ServerConfig.__dataclass_fields__)
    assert {o.name for o in OPTIONS} == fields
    assert all(o.env == "FOCUSPULL_" + o.name.upper() for o in OPTIONS)


# -- path policy --------------------------------------------------------------------------
@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "shots").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.exr").write_bytes(b"x")
    return r


def test_paths_inside_the_root_resolve_to_absolute_real_paths(root):
    policy = PathPolicy([str(root)])
    assert policy.resolve(str(root / "shots" / "a.exr")) == (root / "shots" / "a.exr").resolve()
    assert policy.resolve("shots/a.####.exr") == (root / "shots" / "a.####.exr").resolve()


@pytest.mark.parametrize("path", ["../outside/secret.exr", "shots/../../outside/secret.exr",
                                  "shots/../a.exr", "/etc/passwd", "", "a\x00b"])
def test_escapes_and_dotdot_are_refused(root, path):
    with pytest.raises(PathPolicyError):
        PathPolicy([str(root)]).resolve(path)


def test_symlinks_that_escape_are_refused_but_inner_ones_are_fine(root, tmp_path):
    (root / "shots" / "link_out").symlink_to(tmp_path / "outside")
    (root / "shots" / "link_in").symlink_to(root / "shots")
    policy = PathPolicy([str(root)])
    with pytest.raises(PathPolicyError, match="resolves to"):
        policy.resolve("shots/link_out/secret.exr")
    assert policy.resolve("shots/link_in/x.exr") == (root / "shots" / "x.exr").resolve()


def test_a_symlinked_frame_inside_an_allowed_sequence_is_refused(root, tmp_path):
    (root / "shots" / "plate.0001.exr").write_bytes(b"x")
    (root / "shots" / "plate.0002.exr").symlink_to(tmp_path / "outside" / "secret.exr")
    policy = PathPolicy([str(root)])
    for pattern in ("shots/plate.####.exr", "shots/plate.%04d.exr"):
        with pytest.raises(PathPolicyError, match="plate.0002.exr"):
            policy.check_sequence(pattern)
    (root / "shots" / "plate.0002.exr").unlink()
    assert policy.check_sequence("shots/plate.####.exr").name == "plate.####.exr"


@pytest.mark.parametrize("dirname", ["[s]", "take*", "v?", "[!a]"])
def test_glob_characters_in_a_directory_name_do_not_disable_the_frame_check(root, tmp_path, dirname):
    shot = root / dirname
    shot.mkdir()
    (shot / "plate.0001.exr").symlink_to(tmp_path / "outside" / "secret.exr")
    policy = PathPolicy([str(root)])
    for pattern in (f"{dirname}/plate.####.exr", f"{dirname}/plate.%04d.exr"):
        with pytest.raises(PathPolicyError, match="plate.0001.exr"):
            policy.check_sequence(pattern)
    (shot / "plate.0001.exr").unlink()
    (shot / "plate.0001.exr").write_bytes(b"x")
    assert policy.check_sequence(f"{dirname}/plate.####.exr") == (shot / "plate.####.exr").resolve()


def test_every_file_under_a_checkpoint_dir_is_checked(root, tmp_path):
    ckpt = root / "ckpt"
    (ckpt / "unet").mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"x")
    (ckpt / "unet" / "weights.bin").write_bytes(b"x")
    policy = PathPolicy([str(root)])
    assert policy.check_tree("ckpt") == ckpt.resolve()
    (ckpt / "config.json").symlink_to(tmp_path / "outside" / "secret.exr")
    with pytest.raises(PathPolicyError, match="config.json"):
        policy.check_tree("ckpt")
    (ckpt / "config.json").unlink()
    # A symlinked directory inside the roots is followed: what it holds is checked too.
    (root / "other").mkdir()
    (root / "other" / "config.json").symlink_to(tmp_path / "outside" / "secret.exr")
    (ckpt / "unet" / "more").symlink_to(root / "other")
    with pytest.raises(PathPolicyError, match="config.json"):
        policy.check_tree("ckpt")
    (ckpt / "unet" / "more").unlink()
    (ckpt / "loop").symlink_to(ckpt)  # a cycle ends, it does not hang
    assert policy.check_tree("ckpt") == ckpt.resolve()


def test_no_roots_means_no_files(tmp_path):
    with pytest.raises(PathPolicyError, match="no file roots"):
        PathPolicy([]).resolve(str(tmp_path / "a.exr"))


# -- fair queue ---------------------------------------------------------------------------
def test_release_drops_the_buffers_and_the_spec_of_an_echo_job():
    echo = Job(client=b"c", spec={}, inband={1: {}}, echo=True, keepalive=[b"x"])
    echo.release()
    assert echo.spec is None and echo.inband is None and echo.keepalive is None
    render = Job(client=b"c", spec="a RenderJob", inband={1: {}})
    render.release()
    assert render.spec == "a RenderJob" and render.inband is None  # kept: the history shows it


def test_queue_is_round_robin_across_clients_and_fifo_within_one():
    q = FairQueue(max_queued=10)
    a = [Job(client=b"A", spec=i) for i in range(4)]
    b = [Job(client=b"B", spec=i) for i in range(2)]
    for j in a:
        q.put(j)
    for j in b:
        q.put(j)
    order = [q.get(0) for _ in range(6)]
    assert order == [a[0], b[0], a[1], b[1], a[2], a[3]]
    assert q.get(timeout=0.01) is None


def test_queue_bound_remove_and_drain():
    q = FairQueue(max_queued=2)
    j1, j2 = Job(client=b"A", spec=1), Job(client=b"B", spec=2)
    q.put(j1)
    q.put(j2)
    with pytest.raises(ServerBusy, match="--max-queued"):
        q.put(Job(client=b"C", spec=3))
    assert q.remove(j1.id) is j1 and q.remove(j1.id) is None and len(q) == 1
    assert q.drain() == [j2] and len(q) == 0


def test_queue_get_wakes_a_waiting_worker():
    q = FairQueue(max_queued=2)
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=5)))
    t.start()
    job = Job(client=b"A", spec=1)
    q.put(job)
    t.join(5)
    assert got == [job]
