"""Checkpoints: exact resume (also after kill -9), atomic files, checksums, tampering, truncation."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import cloud
from pyhbnode import zoo
from pyhbnode.training import (
    CheckpointCorrupt, UnsafeCheckpoint, fit, latest_checkpoint, list_checkpoints, load_checkpoint,
)
from pyhbnode.training.checkpoint import checkpoint_path

REPO = Path(__file__).resolve().parents[1]






def noisy_ode() -> nn.Module:
    """An ODE model followed by dropout, so that resuming must also restore the RNG exactly."""
    torch.manual_seed(0)
    return nn.Sequential(zoo.build("pointcloud", "hbnode", tol=1e-3), nn.Dropout(0.1))


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


SETTINGS = dict(val_data=cloud(1), metrics=["accuracy"], lr=0.01, batch_size=50, seed=3, lr_schedule="step:2:0.5",
                progress=False)  # the kill-9 script below uses the same


def test_resume_inside_an_epoch_equals_an_uninterrupted_run(tmp_path):
    full = noisy_ode()
    reference = fit(full, cloud(), epochs=4, **SETTINGS)

    part = noisy_ode()
    fit(part, cloud(), epochs=4, checkpoint_dir=tmp_path, checkpoint_every=1, max_batches=5, **SETTINGS)  # 5 = epoch 2, batch 2
    resumed_model = noisy_ode()  # fresh weights: everything must come from the checkpoint
    resumed = fit(resumed_model, cloud(), epochs=4, checkpoint_dir=tmp_path, checkpoint_every=1, **SETTINGS)
    assert_same(weights(resumed_model), weights(full))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.batches) == strip(reference.batches)
    assert strip(resumed.epochs) == strip(reference.epochs)
    # a finished run resumes to itself without training further
    again = fit(noisy_ode(), cloud(), epochs=4, checkpoint_dir=tmp_path, checkpoint_every=1, **SETTINGS)
    assert len(again.batches) == 12


@pytest.mark.parametrize("generator", [None, 11], ids=["global RNG", "own generator"])
def test_resume_with_a_shuffling_dataloader_of_the_users(tmp_path, generator):
    """A user's DataLoader(shuffle=True) draws its order from the global RNG or its own
    generator when the epoch's iterator is created; resuming recreates that order."""
    def loader() -> DataLoader:
        g = None if generator is None else torch.Generator().manual_seed(generator)
        return DataLoader(TensorDataset(*cloud()), batch_size=50, shuffle=True, generator=g)

    settings = {k: v for k, v in SETTINGS.items() if k != "batch_size"}
    full = noisy_ode()
    fit(full, loader(), epochs=3, **settings)
    fit(noisy_ode(), loader(), epochs=3, checkpoint_dir=tmp_path, checkpoint_every=1, max_batches=4, **settings)
    model = noisy_ode()
    fit(model, loader(), epochs=3, checkpoint_dir=tmp_path, checkpoint_every=1, **settings)
    assert_same(weights(model), weights(full))


def test_two_newest_checkpoints_are_kept_with_checksum_records(tmp_path):
    fit(noisy_ode(), cloud(), epochs=3, checkpoint_dir=tmp_path, **SETTINGS)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ckpt-000000006.json", "ckpt-000000006.pt", "ckpt-000000009.json", "ckpt-000000009.pt"]
    record = json.loads((tmp_path / "ckpt-000000009.json").read_text())
    data = (tmp_path / "ckpt-000000009.pt").read_bytes()
    assert record["bytes"] == len(data) and record["sha256"] == hashlib.sha256(data).hexdigest()
    state = load_checkpoint(tmp_path / "ckpt-000000009.pt")
    assert state["position"] == {"epoch": 3, "batch": 0, "iteration": 9, "completed": True}
    assert {"model", "optimizer", "scheduler", "rng", "rng_epoch_start", "history", "signature"} <= state.keys()


def test_resume_refuses_a_checkpoint_from_other_settings(tmp_path):
    fit(noisy_ode(), cloud(), epochs=1, checkpoint_dir=tmp_path, **SETTINGS)
    with pytest.raises(ValueError, match=r"other settings: lr 0\.01 \(checkpoint\) vs 0\.02"):
        fit(noisy_ode(), cloud(), epochs=2, checkpoint_dir=tmp_path, **{**SETTINGS, "lr": 0.02})
    # resume=False starts over (and clears the old checkpoints)
    with pytest.warns(UserWarning, match="deleted 1 old checkpoint"):
        history = fit(noisy_ode(), cloud(), epochs=1, checkpoint_dir=tmp_path, resume=False,
                      **{**SETTINGS, "lr": 0.02})
    assert len(history.batches) == 3


def _authors_sonode(dormant: bool) -> nn.Module:
    torch.manual_seed(0)
    net = zoo.build("pointcloud", "sonode", preset="authors", tol=1e-3)
    if not dormant:
        del net.dormant
    return net


def test_dormant_scalars_stay_out_of_training_and_of_what_a_checkpoint_must_hold(tmp_path):
    settings = {**{k: v for k, v in SETTINGS.items() if k != "lr_schedule"}, "weight_decay": 0.1}
    # A checkpoint written before the model carried its dormant scalar still resumes ...
    fit(_authors_sonode(dormant=False), cloud(), epochs=2, checkpoint_dir=tmp_path, max_batches=4, **settings)
    resumed = _authors_sonode(dormant=True)
    fit(resumed, cloud(), epochs=2, checkpoint_dir=tmp_path, **settings)
    plain = _authors_sonode(dormant=False)
    fit(plain, cloud(), epochs=2, **settings)
    # ... to the weights of an uninterrupted run, and the scalar never moved (even with weight decay).
    assert_same({k: v for k, v in weights(resumed).items() if not k.startswith("dormant.")}, weights(plain))
    assert float(resumed.dormant["gamma"]) == -3.0
    # A checkpoint of another model names the keys that do not fit.
    other = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"not this model's: missing 0\.weight, 0\.bias.*unexpected "):
        fit(other, cloud(), epochs=2, checkpoint_dir=tmp_path, **settings)


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    full = noisy_ode()
    fit(full, cloud(), epochs=3, **SETTINGS)

    fit(noisy_ode(), cloud(), epochs=3, checkpoint_dir=tmp_path, checkpoint_every=2, max_batches=5, **SETTINGS)
    newest, previous = list_checkpoints(tmp_path)[:2]  # iterations 5 (final of the cut run) and 4
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointCorrupt, match="truncated"):
        load_checkpoint(newest)
    model = noisy_ode()
    with pytest.warns(UserWarning, match="truncated"):
        fit(model, cloud(), epochs=3, checkpoint_dir=tmp_path, checkpoint_every=2, **SETTINGS)
    assert_same(weights(model), weights(full))  # resumed exactly from iteration 4
    assert (tmp_path / (newest.name + ".corrupt")).exists()  # set aside, never picked again


def test_checkpoint_without_its_record_or_with_a_wrong_checksum_is_skipped(tmp_path):
    fit(noisy_ode(), cloud(), epochs=2, checkpoint_dir=tmp_path, **SETTINGS)
    newest, previous = list_checkpoints(tmp_path)
    newest.with_suffix(".json").unlink()  # as if killed between writing the archive and its record
    with pytest.raises(CheckpointCorrupt, match="no checksum record"):
        load_checkpoint(newest)
    with pytest.warns(UserWarning, match="no checksum record"):
        path, state = latest_checkpoint(tmp_path)
    assert path == previous

    record = json.loads(previous.with_suffix(".json").read_text())
    record["sha256"] = "0" * 64
    previous.with_suffix(".json").write_text(json.dumps(record))
    with pytest.raises(CheckpointCorrupt, match="SHA-256"):
        load_checkpoint(previous)
    with pytest.warns(UserWarning):
        assert latest_checkpoint(tmp_path) is None


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(path: Path, data: bytes, *, with_record: bool) -> None:
    path.write_bytes(data)
    if with_record:
        record = {"format": "pyhbnode-checkpoint/1", "file": path.name, "bytes": len(data),
                  "sha256": hashlib.sha256(data).hexdigest(), "iteration": 99}
        path.with_suffix(".json").write_text(json.dumps(record))


@pytest.mark.parametrize("kind", ["raw pickle", "torch archive"])
def test_tampered_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, kind):
    ckpt = tmp_path / "ckpt"
    fit(noisy_ode(), cloud(), epochs=1, checkpoint_dir=ckpt, **SETTINGS)
    marker = tmp_path / "pwned"
    evil = {"format": "pyhbnode-checkpoint/1", "model": _Payload(marker)}
    if kind == "raw pickle":
        data = pickle.dumps(evil)
    else:
        buffer = __import__("io").BytesIO()
        torch.save(evil, buffer)
        data = buffer.getvalue()
    target = checkpoint_path(ckpt, 99)

    # archive and checksum record rewritten together: refused outright, with a clear error
    _plant(target, data, with_record=True)
    with pytest.raises(UnsafeCheckpoint, match="refusing to load .*tampered"):
        load_checkpoint(target)
    with pytest.raises(UnsafeCheckpoint):
        fit(noisy_ode(), cloud(), epochs=2, checkpoint_dir=ckpt, **SETTINGS)
    assert not marker.exists()

    # archive replaced but the record left alone: the checksum catches it before unpickling
    good = json.loads((ckpt / "ckpt-000000003.json").read_text())
    target.with_suffix(".json").write_text(json.dumps({**good, "file": target.name}))
    with pytest.raises(CheckpointCorrupt):
        load_checkpoint(target)
    assert not marker.exists()


KILL_SCRIPT = textwrap.dedent("""
    import pathlib, sys, time
    import torch
    torch.set_num_threads(1)
    from torch import nn
    from pyhbnode import zoo
    from pyhbnode.data import make_pointcloud
    from pyhbnode.training import Callback, fit, list_checkpoints

    ckpt, out, hold = sys.argv[1], sys.argv[2], sys.argv[3]

    class Report(Callback):
        def on_train_begin(self, model, history):
            print("start", len(history.batches), flush=True)

        def on_batch_end(self, record):
            # With a hold file: once a checkpoint at iteration >= 6 is complete, say so and wait
            # to be killed -- midway through the run, whatever the machine's speed.
            done = [p for p in list_checkpoints(ckpt) if p.with_suffix(".json").exists()]
            if hold != "-" and done and int(done[0].stem.split("-")[1]) >= 6:
                pathlib.Path(hold).write_text("ready")
                time.sleep(3600)

    def cloud(seed):
        x, y = make_pointcloud(seed=seed)
        return torch.from_numpy(x), torch.from_numpy(y)

    torch.manual_seed(0)
    model = nn.Sequential(zoo.build("pointcloud", "hbnode", tol=1e-3), nn.Dropout(0.1))
    fit(model, cloud(0), val_data=cloud(1), metrics=["accuracy"], epochs=6, lr=0.01, batch_size=50, seed=3,
        lr_schedule="step:2:0.5", checkpoint_dir=ckpt, checkpoint_every=2, callbacks=[Report()], progress=False)
    torch.save(model.state_dict(), out)
""")


def test_kill_9_midway_then_resume_gives_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ckpt = tmp_path / "ckpt"

    def start(out: str, hold: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(ckpt), str(tmp_path / out), hold],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    ready = tmp_path / "ready"
    victim = start("killed.pt", str(ready))
    # The same run uninterrupted, in this process while the victim starts up.
    reference = noisy_ode()
    fit(reference, cloud(0), epochs=6, **SETTINGS)

    deadline = time.time() + 300
    while not ready.exists():  # the victim writes it after a checkpoint >= 6, then waits
        assert victim.poll() is None, victim.communicate()
        assert time.time() < deadline, "the victim wrote no checkpoint at iteration >= 6 within 300 s"
        time.sleep(0.01)
    victim.kill()  # SIGKILL: no cleanup, no final checkpoint
    victim.wait()
    assert victim.returncode == -9
    assert not (tmp_path / "killed.pt").exists()

    resumed = start("resumed.pt", "-")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    started_at = int(out.split()[1])
    assert 6 <= started_at < 18, out  # it resumed midway rather than starting over
    assert_same(torch.load(tmp_path / "resumed.pt", weights_only=True), weights(reference))
