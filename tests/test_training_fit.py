"""fit(): convergence, determinism, NFE logging, History, data layouts, schedules, callbacks."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers import cloud
from pyhbnode import HBNODE, ODERNN, Direct, SolverOptions, zoo
from pyhbnode.data import SequenceDataset, collate_time_first
from pyhbnode.fields import mlp
from pyhbnode.layers import solver_layers
from pyhbnode.training import Callback, History, fit






def small_ode(seed: int = 0, model: str = "hbnode") -> nn.Module:
    torch.manual_seed(seed)
    return zoo.build("pointcloud", model, tol=1e-3)


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_fit_converges_on_pointcloud():
    model = small_ode(model="ghbnode")
    history = fit(model, cloud(), epochs=60, lr=0.03, batch_size=120, metrics=["accuracy"], progress=False)
    losses = [e["train_loss"] for e in history.epochs]
    assert losses[0] > 0.9
    assert losses[-1] < 0.15, losses[-5:]
    assert history.epochs[-1]["train_accuracy"] >= 0.95


def test_same_seed_gives_identical_weights_and_a_different_seed_does_not():
    runs = []
    for seed in (5, 5, 6):
        model = small_ode()
        fit(model, cloud(), epochs=2, lr=0.01, batch_size=50, seed=seed, progress=False)
        runs.append(params(model))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_validation_does_not_change_what_training_draws():
    """Creating the validation iterator draws a seed; fit puts the generators back, so a
    model with dropout trains to the same weights with or without validation data."""
    runs = []
    for val in (None, cloud(1)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.2), nn.Tanh(), nn.Linear(16, 1))
        fit(model, cloud(), val_data=val, epochs=3, batch_size=50, progress=False)
        runs.append(params(model))
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_records_hold_forward_and_backward_nfe_and_the_documented_keys():
    model = small_ode()
    history = fit(model, cloud(), val_data=cloud(1), metrics=["accuracy", "mse"], epochs=2, lr=0.01,
                  batch_size=50, progress=False)
    assert len(history.batches) == 6 and len(history.epochs) == 2
    b = history.batches[0]
    for key in ("epoch", "batch", "iteration", "size", "loss", "nfe_forward", "nfe_backward", "grad_norm",
                "seconds", "lr", "accuracy", "mse"):
        assert key in b, key
    assert (b["epoch"], b["batch"], b["iteration"], b["size"]) == (1, 1, 1, 50)
    assert history.batches[2]["size"] == 20  # 120 points, batches of 50
    # dopri5 evaluates the field 2 + 6 * steps times forward; backward NFE is read after backward.
    assert all(r["nfe_forward"] >= 8 and (r["nfe_forward"] - 2) % 6 == 0 for r in history.batches)
    assert all(r["nfe_backward"] > 0 for r in history.batches)
    e = history.epochs[-1]
    for key in ("epoch", "batches", "iteration", "train_loss", "train_accuracy", "train_mse", "nfe_forward",
                "nfe_backward", "val_loss", "val_accuracy", "val_mse", "val_nfe_forward", "seconds", "lr"):
        assert key in e, key
    # train_loss is the sample-weighted mean of the epoch's batch losses
    rows = history.epoch_batches(2)
    assert e["train_loss"] == pytest.approx(sum(r["loss"] * r["size"] for r in rows) / 120)
    # with an mse loss the val mse metric equals the val loss
    assert e["val_mse"] == pytest.approx(e["val_loss"])


def test_solver_keywords_reach_every_solving_layer():
    model = small_ode()
    fit(model, cloud(), epochs=1, batch_size=120, solver={"tol": 1e-2, "adjoint": "direct"}, progress=False)
    (layer,) = solver_layers(model)
    assert (layer.options.rtol, layer.options.atol, layer.options.adjoint) == (1e-2, 1e-2, Direct())
    whole = SolverOptions(rtol=1e-3, atol=1e-4, max_steps=99)
    fit(model, cloud(), epochs=1, batch_size=120, solver=whole, progress=False)
    assert layer.options == dataclasses.replace(whole, compile=False)  # "auto" resolved once for the run
    with pytest.raises(TypeError, match="unknown solver option"):
        fit(model, cloud(), solver={"rtl": 1e-3}, progress=False)


def test_history_round_trips_through_json_jsonl_and_csv(tmp_path):
    history = fit(small_ode(), cloud(), epochs=2, batch_size=60, metrics=["accuracy"], progress=False)
    assert History.from_json(history.to_json()) == history
    history.to_jsonl(tmp_path / "all.jsonl", extra={"model": "hbnode"})
    again = History.from_jsonl(tmp_path / "all.jsonl")
    assert [{k: v for k, v in r.items() if k != "model"} for r in again.batches] == history.batches
    assert len(again.epochs) == 2 and again.epochs[0]["model"] == "hbnode"
    history.to_jsonl(tmp_path / "b.jsonl", kind="batch")
    history.to_jsonl(tmp_path / "e.jsonl", kind="epoch")
    assert History.from_jsonl(tmp_path / "b.jsonl", tmp_path / "e.jsonl") == history
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["kind"] == "batch"
    header = (history.to_csv(tmp_path / "epochs.csv")).read_text().splitlines()[0].split(",")
    assert header[:4] == ["epoch", "batches", "iteration", "train_loss"]
    summary = history.summary()
    assert summary["iterations"] == 4 and summary["final_train_accuracy"] == history.epochs[-1]["train_accuracy"]


def test_dataloader_and_dataset_inputs_are_accepted():
    x, y = cloud()
    loader = DataLoader(TensorDataset(x, y), batch_size=40, shuffle=False)
    history = fit(small_ode(), loader, epochs=1, progress=False)
    assert [r["size"] for r in history.batches] == [40, 40, 40]
    history = fit(small_ode(), TensorDataset(x, y), batch_size=100, epochs=1, progress=False)
    assert [r["size"] for r in history.batches] == [100, 20]


def test_time_first_sequences_train_through_a_collate_fn():
    """An ODE-RNN takes x (T, B, k), dt (T, B); the data are batch-first items stacked on axis 1."""
    torch.manual_seed(0)
    T, N, k, n = 6, 10, 2, 3
    rnn = ODERNN(HBNODE(mlp([n, 8, n], "tanh")), nn.Linear(2 * n + k, 2 * n), nn.Linear(n, k), n, tol=1e-3)
    x = torch.randn(T, N, k)
    dt = torch.rand(T, N) + 0.5
    y = torch.roll(x, -1, dims=0)
    history = fit(rnn, SequenceDataset(x, dt, y), batch_size=4, epochs=2,
                  progress=False)
    assert [r["size"] for r in history.batches[:3]] == [4, 4, 2]  # samples, not time steps
    assert all(r["nfe_forward"] > 0 for r in history.batches)


def test_max_batches_caps_the_run_and_callbacks_see_every_record():
    seen: dict[str, int] = {"batch": 0, "epoch": 0, "begin": 0, "end": 0}

    class Count(Callback):
        def on_train_begin(self, model, history):
            seen["begin"] += 1

        def on_batch_end(self, record):
            seen["batch"] += 1

        def on_epoch_end(self, record):
            seen["epoch"] += 1

        def on_train_end(self, history):
            seen["end"] += 1

    history = fit(small_ode(), cloud(), epochs=5, batch_size=50, max_batches=4, callbacks=[Count()], progress=False)
    assert len(history.batches) == 4
    assert [e["batches"] for e in history.epochs] == [3, 1]  # the cut epoch still gets its record
    assert seen == {"batch": 4, "epoch": 2, "begin": 1, "end": 1}


def test_a_callback_returning_true_stops_training():
    history = fit(small_ode(), cloud(), epochs=5, batch_size=50, progress=False,
                  callbacks=[lambda record: record["epoch"] >= 2])
    assert len(history.epochs) == 2 and len(history.batches) == 6


def test_lr_schedules_and_gradient_clipping():
    history = fit(small_ode(), cloud(), epochs=4, batch_size=120, lr=0.1, lr_schedule="step:2:0.5", progress=False)
    assert [e["lr"] for e in history.epochs] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    history = fit(small_ode(), cloud(), epochs=2, batch_size=120, lr=0.1, lr_schedule="cosine", progress=False)
    assert [e["lr"] for e in history.epochs] == pytest.approx([0.1, 0.05])
    history = fit(small_ode(), cloud(), epochs=2, batch_size=120, lr=0.1, progress=False,
                  lr_schedule=lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, 0.1))
    assert [e["lr"] for e in history.epochs] == pytest.approx([0.1, 0.01])

    # clipping: with max norm 1e-3 each Adam-free SGD step moves the weights by at most lr * 1e-3
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    x, y = cloud()
    fit(net, (x, y * 100), epochs=1, batch_size=120, lr=1.0, optimizer=torch.optim.SGD, grad_clip=1e-3,
        progress=False)
    after = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert (after - before).norm() <= 1e-3 + 1e-7


def test_cross_entropy_with_accuracy_on_a_plain_module():
    torch.manual_seed(0)
    x = torch.randn(90, 4)
    labels = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # 3 classes
    net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    history = fit(net, (x, labels), loss="cross_entropy", metrics=["accuracy"], epochs=30, lr=0.03,
                  batch_size=30, progress=False)
    assert history.epochs[-1]["train_accuracy"] > 0.85
    assert all(r["nfe_forward"] == 0 for r in history.batches)  # no solving layers: NFE 0


def test_progress_bar_shows_loss_and_nfe(capsys):
    fit(small_ode(), cloud(), epochs=1, batch_size=60, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "nfe=" in err


def test_validation_passes_have_their_own_bar_when_progress_is_on(capsys):
    # a full test set takes minutes after a short training: it must not sit behind a bar at 100 %
    fit(small_ode(), cloud(), val_data=cloud(seed=1), epochs=1, batch_size=60, progress=True)
    assert "validation" in capsys.readouterr().err
    fit(small_ode(), cloud(), val_data=cloud(seed=1), epochs=1, batch_size=60, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name, reference", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_by_name_is_fused_and_makes_the_reference_update(name, reference):
    from pyhbnode.training.optim import make_optimizer

    torch.manual_seed(0)
    ours = [nn.Parameter(torch.randn(5, 3, dtype=torch.float64)), nn.Parameter(torch.randn(3, dtype=torch.float64))]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    opt = make_optimizer(name, ours, lr=0.05, weight_decay=0.01)
    ref = reference(theirs, lr=0.05, weight_decay=0.01, foreach=False)
    assert opt.defaults["fused"] is True
    for _ in range(5):
        grads = [torch.randn_like(p) for p in ours]
        for o, t, g in zip(ours, theirs, grads, strict=True):
            o.grad, t.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    for o, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(o, t, rtol=1e-12, atol=1e-12)


def test_adam_by_name_falls_back_keeps_a_callers_choice_and_takes_param_groups():
    from pyhbnode.training import optim

    w = nn.Parameter(torch.randn(3))
    complex_w = nn.Parameter(torch.randn(3, dtype=torch.complex64))
    assert optim.make_optimizer("adam", [w, complex_w], lr=0.1, weight_decay=0.0).defaults["fused"] is None
    assert optim.make_optimizer("adam", [{"params": [w]}], lr=0.1, weight_decay=0.0).defaults["fused"] is True
    own = optim.OPTIMIZERS["adam"]([w], lr=0.1, foreach=True)
    assert own.defaults["fused"] is None and own.defaults["foreach"] is True
    if "cpu" not in optim._fused_devices():  # a torch before 2.4: no fused CPU kernel to ask for
        assert optim.make_optimizer("adam", [w], lr=0.1, weight_decay=0.0).defaults["fused"] is None


@pytest.mark.parametrize("saved_fused, now_fused", [(None, True), (True, None)])
def test_a_checkpoint_resumes_on_the_kernels_of_this_process(saved_fused, now_fused):
    from pyhbnode.training.checkpoint import _with_kernels_of

    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(4, dtype=torch.float64))
    b = nn.Parameter(a.detach().clone())
    before = torch.optim.Adam([a], lr=0.1, fused=saved_fused)
    for _ in range(3):
        a.grad = torch.ones_like(a)
        before.step()
    after = torch.optim.Adam([b], lr=0.1, fused=now_fused)
    after.load_state_dict(_with_kernels_of(after, before.state_dict()))
    assert after.param_groups[0]["fused"] is now_fused
    with torch.no_grad():
        b.copy_(a)
    a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    before.step()
    after.step()  # the resumed step continues the same moments and step count
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
