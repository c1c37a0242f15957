"""Bad input is refused before any training starts; a diverging run stops and keeps its last good checkpoint."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from pyhbnode import SolverError, zoo
from pyhbnode.layers import set_solver_options
from pyhbnode.training import Callback, TrainingDiverged, fit, list_checkpoints, load_checkpoint




def regression(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return x, x.sum(1, keepdim=True)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 1)


class _Singles(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.zeros(3)


def untouched(model: nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net().state_dict().values()))


def lr(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A metric whose name would overwrite the records' learning rate."""
    return out.mean()


x, y = regression()
labels = torch.randint(0, 4, (40,))

BAD = {
    "target shape": (dict(train_data=(x, y[:, 0])), r"output has shape \(32, 1\) but the training target has shape \(32,\)"),
    "input shape": (dict(train_data=(torch.randn(40, 5), y)), r"cannot run on the first training batch \(inputs: \(32, 5\) float32\)"),
    "float labels for cross_entropy": (dict(train_data=(x, labels.float()), loss="cross_entropy"),
                                       r"integer class labels \(torch\.long\).*float32"),
    "integer targets for mse": (dict(train_data=(x, labels)), "needs float targets.*cross_entropy"),
    "bce targets outside [0, 1]": (dict(train_data=(x, y), loss="bce"), r"targets in \[0, 1\]"),
    "empty tensors": (dict(train_data=(x[:0], y[:0])), "training data is empty"),
    "empty dataset": (dict(train_data=TensorDataset(x[:0], y[:0])), "training data is empty"),
    "empty validation": (dict(train_data=(x, y), val_data=(x[:0], y[:0])), "validation data is empty"),
    "validation shape": (dict(train_data=(x, y), val_data=(x, y[:, 0])), "validation target has shape"),
    "unequal tensors": (dict(train_data=(x, y[:10])), "share their first"),
    "batch without target": (dict(train_data=_Singles()), r"must be a tuple \(inputs\.\.\., target\)"),
    "not data": (dict(train_data="data.csv"), "must be a torch Dataset, a DataLoader or a tuple"),
    "unknown loss": (dict(train_data=(x, y), loss="hinge"), "unknown loss 'hinge'"),
    "unknown metric": (dict(train_data=(x, y), metrics=["acuracy"]), "unknown metric 'acuracy'"),
    "metric named like a record key": (dict(train_data=(x, y), metrics=[lr]),
                                       r"clash with the batch record's own keys"),
    "unknown optimizer": (dict(train_data=(x, y), optimizer="adamm"), "unknown optimizer 'adamm'"),
    "unknown schedule": (dict(train_data=(x, y), lr_schedule="linear"), "unknown lr_schedule 'linear'"),
    "bad step schedule": (dict(train_data=(x, y), lr_schedule="step:0:0.5"), "step:<every"),
    "unknown strategy": (dict(train_data=(x, y), strategy="fsdp"), "unknown strategy 'fsdp'"),
    "ddp without a process group": (dict(train_data=(x, y), strategy="ddp"), "torchrun"),
    "epochs 0": (dict(train_data=(x, y), epochs=0), "epochs must be an integer >= 1"),
    "negative lr": (dict(train_data=(x, y), lr=-1.0), "lr must be > 0"),
    "NaN lr": (dict(train_data=(x, y), lr=float("nan")), "lr must be a finite number"),
    "negative weight decay": (dict(train_data=(x, y), weight_decay=-0.1), "weight_decay must be >= 0"),
    "solver option on a plain module": (dict(train_data=(x, y), solver={"tol": 1e-3}), "no ODEBlock/ODERNN layer"),
    "unknown device": (dict(train_data=(x, y), device="tpu"), "unknown device 'tpu'"),
    "loss returning a vector": (dict(train_data=(x, y), loss=lambda out, t: (out - t) ** 2), "must return a scalar"),
}


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=2.5), r"batch_size must be an integer, got 2\.5 \(float\)"),
    (dict(epochs=True), r"epochs must be an integer, got True \(bool\)"),
    (dict(lr="0.1"), r"lr must be a real number, got .0\.1. \(str\)"),
])
def test_a_setting_of_the_wrong_type_is_a_type_error_before_training(kwargs, message):
    model = net()
    with pytest.raises(TypeError, match=message):
        fit(model, (x, y), progress=False, **kwargs)
    assert untouched(model)


def test_a_one_element_tensor_setting_is_read_out_as_a_float(tmp_path):
    history = fit(net(), (x, y), lr=torch.tensor(0.01), grad_clip=torch.tensor(1.0), epochs=1, progress=False,
                  checkpoint_dir=tmp_path)
    assert all(type(r["lr"]) is float for r in history.batches)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_clear_value_error_before_training(case):
    kwargs, message = BAD[case]
    model = net()
    with pytest.raises(ValueError, match=message) as info:
        fit(model, progress=False, **kwargs)
    assert "\n" not in str(info.value)
    assert untouched(model)


def test_non_writable_checkpoint_dir_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    model = net()
    with pytest.raises(ValueError, match="is not writable"):
        fit(model, (x, y), checkpoint_dir=blocker / "ckpt", progress=False)
    assert untouched(model)


def test_labels_out_of_range_for_cross_entropy():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 2\]"):
        fit(nn.Linear(3, 3), (x, labels), loss="cross_entropy", progress=False)


class _Explodes(nn.Module):
    """A linear model whose output turns NaN from the ``at``-th training call on."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.linear, self.at, self.calls = nn.Linear(3, 1), at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        out = self.linear(x)
        return out * math.nan if self.training and self.calls >= self.at else out


def test_nan_loss_stops_naming_epoch_and_batch_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = _Explodes(at=7)  # 4 batches per epoch: the 7th step is epoch 2, batch 3
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 3 \(iteration 7\): the loss is nan") as info:
        fit(model, (x, y), batch_size=10, epochs=5, checkpoint_dir=tmp_path, checkpoint_every=2, progress=False)
    err = info.value
    assert (err.epoch, err.batch, err.iteration) == (2, 3, 7)
    newest = list_checkpoints(tmp_path)[0]
    assert err.checkpoint == newest and newest.name == "ckpt-000000006.pt"
    state = load_checkpoint(newest)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no step was taken on the NaN
    # the kept checkpoint resumes (here straight into the same NaN, reported again)
    with pytest.raises(TrainingDiverged, match="iteration 7"):
        fit(model, (x, y), batch_size=10, epochs=5, checkpoint_dir=tmp_path, checkpoint_every=2, progress=False)


def test_solver_failure_stops_with_the_solver_error_as_cause(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("pointcloud", "hbnode", tol=1e-3)
    x2, y2 = torch.rand(40, 2) - 0.5, torch.ones(40, 1)

    class Sabotage(Callback):
        def on_batch_end(self, record):
            if record["iteration"] == 3:  # from now on no solve can finish
                set_solver_options(model, max_steps=1, tol=1e-12)

    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 2 \(iteration 4\): the forward solve failed") as info:
        fit(model, (x2, y2), batch_size=20, epochs=3, checkpoint_dir=tmp_path, callbacks=[Sabotage()], progress=False)
    assert isinstance(info.value.__cause__, SolverError)
    assert info.value.checkpoint is not None and info.value.checkpoint.name == "ckpt-000000002.pt"
