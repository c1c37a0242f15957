"""The model zoo: every task × model builds the paper's architecture and trains end to end."""
from __future__ import annotations

import pytest
import torch

from pyhbnode import zoo
from pyhbnode.zoo.tasks import SIZES


def _inputs(task: str, batch: int = 2):
    if task == "pointcloud":
        return (torch.randn(batch, 2),)
    if task == "mnist":
        return (torch.randn(batch, 1, 28, 28),)
    if task == "cifar10":
        return (torch.randn(batch, 3, 32, 32),)
    if task in ("plane_vibration", "walker2d"):
        k = 5 if task == "plane_vibration" else 17
        return torch.randn(4, batch, k), torch.ones(4, batch)
    ts = torch.arange(20.0)
    return 0.02 * torch.randn(batch, 20), torch.randn(batch, 1), ts


OUT_SHAPES = {
    "pointcloud": (2, 1), "mnist": (2, 10), "cifar10": (2, 10),
    "plane_vibration": (4, 2, 5), "walker2d": (4, 2, 17),
}


@pytest.mark.parametrize("task", zoo.TASKS)
@pytest.mark.parametrize("model", zoo.MODELS)
def test_every_task_and_model_runs_forward_and_backward(task, model):
    net = zoo.build(task, model, tol=1e-3)
    out = net(*_inputs(task))
    if task == "silverbox":
        assert out.shape == (20, 2, SIZES["silverbox"][model][0])
    else:
        assert out.shape == OUT_SHAPES[task]
    assert net.stats.nfe_forward > 0 and net.stats.nfe_backward == 0
    out.pow(2).mean().backward()
    assert net.stats.nfe_backward > 0
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert trainable and not missing, f"no gradient reaches {missing}"


def test_sizes_follow_the_spec():
    net = zoo.build("pointcloud", "sonode")
    assert net.block.field.f[0].in_features == 4 and net.block.field.f[0].out_features == 13
    net = zoo.build("mnist", "hbnode")
    assert net.initial.net[-1].out_channels == 2 * 5 - 1
    net = zoo.build("cifar10", "ghbnode")
    assert net.initial.net[-1].out_channels == 2 * 12 - 3
    net = zoo.build("walker2d", "hbnode")
    assert net.rnn.cell[0].in_features == 2 * 24 + 17 and net.rnn.cell[-1].out_features == 48
    net = zoo.build("plane_vibration", "node")
    assert [m.out_features for m in net.rnn.field.f if hasattr(m, "out_features")] == [63, 84, 21]
    assert zoo.build("pointcloud", "hbnode").block.options.rtol == 1e-7
    assert zoo.build("mnist", "hbnode").block.options.rtol == 1e-5


def test_learnable_heavy_ball_coefficients_start_at_the_papers_values():
    field = zoo.build("pointcloud", "ghbnode").block.field
    assert abs(float(field.gamma.detach()) - torch.sigmoid(torch.tensor(-3.0)).item()) < 1e-7
    assert abs(float(field.xi.detach()) - torch.log(torch.tensor(2.0)).item()) < 1e-7
    silverbox = zoo.build("silverbox", "ghbnode").block.field
    assert isinstance(silverbox.sigma, torch.nn.Hardtanh) and silverbox.sigma.max_val == 5.0


def test_solver_options_pass_through_and_bad_names_fail():
    net = zoo.build("walker2d", "ghbnode", backend="torchdiffeq", rtol=1e-4, atol=1e-6, adjoint="direct", max_steps=77)
    o = net.rnn.options
    assert (o.rtol, o.atol, o.adjoint, o.max_steps) == (1e-4, 1e-6, "direct", 77)
    with pytest.raises(ValueError, match="unknown task"):
        zoo.build("imagenet", "node")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.build("mnist", "resnet")
    with pytest.raises(TypeError, match="unknown solver option"):
        zoo.build("mnist", "node", rtl=1e-3)
    with pytest.raises(ValueError, match="only to hbnode/ghbnode"):
        zoo.build("mnist", "node", field_kwargs={"gamma": 0.1})
