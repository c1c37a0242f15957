"""Files under faults: all-or-nothing checkpoint writes, disk full / read-only mid-run, FIFOs and
other non-regular files, and one trainer per run directory (with real processes)."""
from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from helpers import cloud
from pyhbnode.training import fit, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from pyhbnode.training import checkpoint as ckpt_module
from pyhbnode.training.errors import CheckpointCorrupt, RunLocked, WriteFailed
from pyhbnode.training.run_lock import LOCK_NAME, RunLock

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(lr=0.01, batch_size=40, seed=1, progress=False)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def state(i: int) -> dict:
    return {"format": ckpt_module.FORMAT, "position": {"iteration": i}, "w": torch.full((3,), float(i))}


class Crash(BaseException):
    """A kill at one point of the write (BaseException: nothing in the writer may catch it)."""


# --- all-or-nothing writes ------------------------------------------------------------------------
@pytest.mark.parametrize("point", ["replace", "fsync", "write"])  # every kill point, every run
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(iterations=st.lists(st.integers(1, 4), min_size=1, max_size=4), crash_at=st.integers(0, 12))
def test_a_kill_anywhere_in_a_write_leaves_the_newest_checkpoint_usable(tmp_path_factory, iterations, crash_at, point):
    """Writes (some rewriting an existing iteration) are killed at the n-th rename, fsync or
    write; afterwards every visible checkpoint loads, and the newest is the last completed write
    or the previous one."""
    directory = tmp_path_factory.mktemp("ck")
    calls = {"n": 0}

    def counted(real_call):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > crash_at:
                raise Crash()
            return real_call(*args, **kwargs)

        return call

    completed: list[int] = []
    mp = pytest.MonkeyPatch()
    try:
        if point == "write":
            opener = Path.open

            def crashing_open(self, *a, **k):
                fh = opener(self, *a, **k)
                if "w" in (a[0] if a else k.get("mode", "r")):
                    fh.write = counted(fh.write)
                return fh

            mp.setattr(Path, "open", crashing_open)
        else:
            mp.setattr(ckpt_module.os, point, counted(getattr(os, point)))
        for it in iterations:
            try:
                save_checkpoint(directory, it, state(it), keep=2)
                completed.append(it)
            except Crash:
                break
    finally:
        mp.undo()
    for path in list_checkpoints(directory):
        load_checkpoint(path)  # never corrupt, whether or not a write was cut
    found = latest_checkpoint(directory)
    cut = {iterations[len(completed)]} if len(completed) < len(iterations) else set()
    allowed = ({max(completed)} if completed else set()) | cut  # the cut write may have landed whole
    if completed:
        assert found is not None
    if found is not None:
        assert found[1]["position"]["iteration"] in allowed


def test_rewriting_an_iteration_keeps_the_old_archive_valid_until_the_new_one_lands(tmp_path):
    save_checkpoint(tmp_path, 3, state(3))
    path = tmp_path / "ckpt-000000003.pt"
    old = path.read_bytes()
    real_replace = os.replace
    seen = []

    def replace(src, dst):
        seen.append(Path(dst).name)
        if Path(dst) == path:
            raise Crash()  # killed after the record, before the archive
        return real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ckpt_module.os, "replace", replace)
        with pytest.raises(Crash):
            save_checkpoint(tmp_path, 3, {**state(3), "w": torch.zeros(3)})
    assert seen == ["ckpt-000000003.json", "ckpt-000000003.pt"]  # record first, archive last
    assert path.read_bytes() == old
    assert torch.equal(load_checkpoint(path)["w"], torch.full((3,), 3.0))  # the old one still verifies
    save_checkpoint(tmp_path, 3, {**state(3), "w": torch.zeros(3)})
    assert torch.equal(load_checkpoint(path)["w"], torch.zeros(3))


# --- disk full / read-only during a run -------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_disk_full_or_read_only_mid_run_names_the_path_and_keeps_the_last_checkpoint(tmp_path, code):
    full = tiny()
    fit(full, cloud(), epochs=3, **SETTINGS)
    real_fsync = os.fsync
    writes = {"n": 0}

    def fsync(fd):  # two checkpoints (archive + record each) succeed, then the disk fails
        if ".ckpt-" in os.readlink(f"/proc/self/fd/{fd}"):
            writes["n"] += 1
            if writes["n"] > 4:
                raise OSError(code, os.strerror(code))
        return real_fsync(fd)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ckpt_module.os, "fsync", fsync)
        with pytest.raises(WriteFailed) as info:
            fit(tiny(), cloud(), epochs=3, checkpoint_dir=tmp_path, **SETTINGS)
    msg = str(info.value)
    assert str(tmp_path / "ckpt-") in msg and os.strerror(code) in msg and "last good checkpoint" in msg
    assert info.value.checkpoint == list_checkpoints(tmp_path)[0]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # its own half-written files are gone
    assert not (tmp_path / LOCK_NAME).exists()  # the lock is released on the way out
    resumed = tiny()
    fit(resumed, cloud(), epochs=3, checkpoint_dir=tmp_path, **SETTINGS)
    for k, v in weights(full).items():
        assert torch.equal(weights(resumed)[k], v)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_the_train_command_prints_one_line_for_a_failing_disk(tmp_path, capsys, code):
    from pyhbnode.cli import main

    real_fsync = os.fsync
    writes = {"n": 0}

    def fsync(fd):  # the disk fails after the first checkpoint's archive and record
        if ".ckpt-" in os.readlink(f"/proc/self/fd/{fd}"):
            writes["n"] += 1
            if writes["n"] > 2:
                raise OSError(code, os.strerror(code))
        return real_fsync(fd)

    argv = ["train", "--task", "pointcloud", "--model", "node", "--epochs", "2", "--quiet", "--tol", "1e-3",
            "--set", "limit=20", "--set", "checkpoint_every=1", "--out", str(tmp_path / "run")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ckpt_module.os, "fsync", fsync)
        assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert str(tmp_path / "run" / "checkpoints") in err[0] and os.strerror(code) in err[0]
    assert "last good checkpoint" in err[0] and "is kept" in err[0]


# --- non-regular files ------------------------------------------------------------------------------
def _finishes(fn, seconds: float = 10.0):
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as err:  # noqa: BLE001
            out["error"] = err

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), "blocked (opened a FIFO?)"
    return out


@pytest.mark.parametrize("which", ["archive", "record", "both"])
def test_a_fifo_named_like_a_checkpoint_is_refused_without_being_opened(tmp_path, which):
    save_checkpoint(tmp_path, 1, state(1))
    path = tmp_path / "ckpt-000000002.pt"
    if which in ("archive", "both"):
        os.mkfifo(path)
    else:
        path.write_bytes(b"x")
    if which in ("record", "both"):
        os.mkfifo(path.with_suffix(".json"))
    else:
        path.with_suffix(".json").write_text(json.dumps({"bytes": 1, "sha256": "0" * 64}))
    out = _finishes(lambda: load_checkpoint(path))
    assert isinstance(out.get("error"), CheckpointCorrupt) and "not a regular file" in str(out["error"])
    with pytest.warns(UserWarning, match="not a regular file"):
        out = _finishes(lambda: latest_checkpoint(tmp_path))
    assert out["value"][0].name == "ckpt-000000001.pt"


def test_config_files_that_are_not_regular_files_are_refused(tmp_path):
    from pyhbnode.cli.config import read_config_file

    fifo, folder = tmp_path / "c.toml", tmp_path / "d.toml"
    os.mkfifo(fifo)
    folder.mkdir()
    for p, kind in ((fifo, "FIFO"), (folder, "directory")):
        out = _finishes(lambda: read_config_file(p))
        assert isinstance(out.get("error"), ValueError) and kind in str(out["error"])


# --- one trainer per directory -----------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    from pyhbnode.training.run_lock import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_a_second_live_process_gets_a_clear_error_at_once(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "60"], stdout=subprocess.PIPE, text=True,
                              env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        with pytest.raises(RunLocked) as info:
            fit(tiny(), cloud(), epochs=1, checkpoint_dir=tmp_path, **SETTINGS)
        assert time.perf_counter() - started < 5
        msg = str(info.value)
        assert f"process {holder.pid} on host {socket.gethostname()}" in msg and str(tmp_path) in msg
        assert not list_checkpoints(tmp_path)  # it touched nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": 0}))
    # a temporary file of the dead writer goes; one of a live process (this one) stays
    dead_tmp = tmp_path / f".ckpt-000000001.pt.tmp-{socket.gethostname()}-{dead.pid}"
    live_tmp = tmp_path / f".ckpt-000000002.pt.tmp-{socket.gethostname()}-{os.getpid()}"
    other_host = tmp_path / f".ckpt-000000003.pt.tmp-elsewhere-{dead.pid}"
    for p in (dead_tmp, live_tmp, other_host):
        p.write_bytes(b"half")
    fit(tiny(), cloud(), epochs=1, checkpoint_dir=tmp_path, **SETTINGS)
    assert list_checkpoints(tmp_path) and not (tmp_path / LOCK_NAME).exists()
    assert not dead_tmp.exists() and live_tmp.exists() and other_host.exists()


def test_a_lock_of_another_host_or_garbage_is_respected_then_recovered(tmp_path):
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"pid": 1, "host": "some-other-machine", "since": time.time()}))
    with pytest.raises(RunLocked, match="some-other-machine"):
        RunLock(tmp_path).acquire()
    lock.write_text("")  # a writer killed between creating and filling it: stale once old
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with RunLock(tmp_path) as held:
        assert json.loads(lock.read_text())["pid"] == os.getpid() and held.held
    assert not lock.exists()


RACER = textwrap.dedent("""
    import sys, time
    from pyhbnode.training.run_lock import RunLock
    from pyhbnode.training.errors import RunLocked
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    try:
        with RunLock(sys.argv[1]):
            got = time.time()
            time.sleep(1.5)
            print("won", got, time.time(), flush=True)
    except RunLocked:
        print("refused", flush=True)
""")


def test_of_processes_started_together_never_two_hold_the_lock(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a stale lock, so that all of them race to take it over
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": 0}))
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), str(start)], stdout=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    held = sorted((float(o[1]), float(o[2])) for o in outs if o[0] == "won")
    assert held and all(o[0] in ("won", "refused") for o in outs), outs
    for (_, released), (taken, _) in zip(held, held[1:]):
        assert taken >= released, f"two processes held the lock at once: {held}"


# --- tampering ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["archive", "record"])
@pytest.mark.parametrize("how", ["flip", "truncate", "append", "empty", "swap"])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0.0, 1.0))
def test_every_tampered_checkpoint_is_refused(tmp_path_factory, target, how, where):
    """A changed byte, a cut, extra bytes, an emptied file or another checkpoint's file put in
    its place: loading raises a CheckpointError; it never returns other data."""
    from pyhbnode.training.errors import CheckpointError

    directory = tmp_path_factory.mktemp("tamper")
    save_checkpoint(directory, 1, state(1))
    save_checkpoint(directory, 2, state(2))
    path = directory / "ckpt-000000002.pt"
    victim = path if target == "archive" else path.with_suffix(".json")
    data = victim.read_bytes()
    i = min(int(where * len(data)), len(data) - 1)
    if how == "flip":
        changed = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
    elif how == "truncate":
        changed = data[:i]
    elif how == "append":
        changed = data + b"\0" * (1 + i % 7)
    elif how == "empty":
        changed = b""
    else:
        changed = (directory / ("ckpt-000000001" + victim.suffix)).read_bytes()
    victim.write_bytes(changed)
    try:
        loaded = load_checkpoint(path)
    except CheckpointError:
        return
    # Only a change that leaves both files meaning the same may load: then it must be the same.
    assert loaded["position"]["iteration"] == 2 and torch.equal(loaded["w"], state(2)["w"]), (target, how, i)
