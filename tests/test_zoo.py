"""The model zoo: every task × model builds the paper's architecture and trains end to end."""
from __future__ import annotations

import pytest
import torch

from pyhbnode import Direct, record, zoo
from pyhbnode.zoo.tasks import SIZES


# Input stamps of the test sequences; the plane-vibration models are built to read this window.
STEPS = 4


def _inputs(task: str, batch: int = 2):
    if task == "pointcloud":
        return (torch.randn(batch, 2),)
    if task == "mnist":
        return (torch.randn(batch, 1, 28, 28),)
    if task == "cifar10":
        return (torch.randn(batch, 3, 32, 32),)
    if task in ("plane_vibration", "walker2d"):
        k = 5 if task == "plane_vibration" else 17
        return torch.randn(STEPS, batch, k), torch.ones(STEPS, batch)
    ts = torch.arange(20.0)
    return 0.02 * torch.randn(batch, 20), torch.randn(batch, 1), ts


OUT_SHAPES = {
    "pointcloud": (2, 1), "mnist": (2, 10), "cifar10": (2, 10),
    "plane_vibration": (4, 2, 5), "walker2d": (4, 2, 17),
}


@pytest.mark.parametrize("task, model", [(t, m) for m in zoo.MODELS for t in zoo.RUNS_ON.get(m, zoo.TASKS)])
@pytest.mark.parametrize("preset", zoo.PRESETS)
def test_every_task_and_model_runs_forward_and_backward(task, model, preset):
    net = zoo.build(task, model, preset=preset, tol=1e-3, window=STEPS)
    with record() as rec:
        out = net(*_inputs(task))
        assert rec.stats.nfe_forward > 0 and rec.stats.nfe_backward == 0
        out.pow(2).mean().backward()
    if task == "silverbox":
        assert out.shape == (20, 2, SIZES["silverbox"][model][0])
    else:
        assert out.shape == OUT_SHAPES[task]
    assert rec.stats.nfe_backward > 0
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    missing = [n for n, p in net.named_parameters()
               if p.requires_grad and p.grad is None and not n.startswith("dormant.")]
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
    assert net.initial.dense.in_features == 64 * 5 and net.initial.dense.out_features == 21
    anode = zoo.build("plane_vibration", "anode")
    assert [m.out_features for m in anode.rnn.field.f if hasattr(m, "out_features")] == [81, 108, 27]
    assert anode.initial.dense.out_features == 5
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
    assert (o.rtol, o.atol, o.adjoint, o.max_steps) == (1e-4, 1e-6, Direct(), 77)
    with pytest.raises(ValueError, match="unknown task"):
        zoo.build("imagenet", "node")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.build("mnist", "resnet")
    with pytest.raises(TypeError, match="unknown solver option"):
        zoo.build("mnist", "node", rtl=1e-3)
    with pytest.raises(ValueError, match="only to hbnode/ghbnode"):
        zoo.build("mnist", "node", field_kwargs={"gamma": 0.1})


# The paper's parameter counts (Appendix E tables) for the 25 models it lists: five tasks × five
# models (the Silverbox initialisation test has no table).  The paper's counts are the authors'
# ``count_parameters`` over their modules, and the authors preset builds those modules, dormant
# scalars included (the frozen ``corr`` of ``HeavyBallNODE(corrf=True)``, the point-cloud SONODE
# notebook's unused ``gamma``).  Sources: plane vibration and Walker2D ANODE-RNN as issue 12 quotes
# the paper; point cloud as the authors' notebooks print it; MNIST and Walker2D from their scripts'
# layers; CIFAR-10 from Appendix E's sizes and their HeavyBallNODE class, since their CIFAR-10
# training script is not in the repository.
PAPER_COUNTS = {
    "pointcloud": {"node": 525, "anode": 567, "sonode": 528, "hbnode": 568, "ghbnode": 568},
    "mnist": {"node": 85316, "anode": 85462, "sonode": 86179, "hbnode": 85931, "ghbnode": 85235},
    "cifar10": {"node": 173611, "anode": 172452, "sonode": 171635, "hbnode": 172917, "ghbnode": 172917},
    "plane_vibration": {"node": 15986, "anode": 16730, "sonode": 16649, "hbnode": 16127, "ghbnode": 16127},
    "walker2d": {"node": 8729, "anode": 8815, "sonode": 8757, "hbnode": 8899, "ghbnode": 8899},
}
# The one count no architecture reaches: Walker2D ANODE-RNN is ODE-RNN (8,729) plus a dense
# initial-state layer from the first stamp's 17 channels to k data channels, 18k parameters
# (17k without bias).  The paper's 8,815 needs 86, which is neither; the authors' script builds
# nn.Linear(17, 5): 8,819.
NOT_THE_AUTHORS_CODE = {("walker2d", "anode"): 8819}
# The paper preset drops the dormant scalars and uses Appendix E's own coefficients: its GHBNODE
# learns ξ where the authors fix it (point cloud ξ = 2, CIFAR-10 ξ = 1.5: one more parameter), and
# its HBNODE has no ξ where the authors' plane-vibration "HBNODE" learns one (one fewer).
PAPER_PRESET_DELTA = {("pointcloud", "ghbnode"): +1, ("cifar10", "ghbnode"): +1, ("plane_vibration", "hbnode"): -1}


def _trainable(net: torch.nn.Module) -> int:
    """The authors' ``count_parameters``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def test_parameter_counts_of_all_25_models_are_the_papers():
    assert sum(len(v) for v in PAPER_COUNTS.values()) == 25
    wrong = {}
    for task, counts in PAPER_COUNTS.items():
        for model, paper in counts.items():
            key = (task, model)
            authors = NOT_THE_AUTHORS_CODE.get(key, paper)
            dormant = len(zoo.variant(task, model, "authors").dormant)
            got = {p: _trainable(zoo.build(task, model, preset=p)) for p in zoo.PRESETS}
            want = {"authors": authors, "paper": authors - dormant + PAPER_PRESET_DELTA.get(key, 0)}
            if got != want:
                wrong[key] = (got, want)
    assert not wrong, f"(task, model): (ours, expected) {wrong}"
    assert 18 * 5 + 8729 == 8819 and all(86 % k for k in (17, 18))


@pytest.mark.parametrize("task, model", [(t, m) for (t, m), v in zoo.AUTHORS.items() if v.dormant])
def test_dormant_scalars_never_get_a_gradient_and_change_nothing(task, model):
    torch.manual_seed(0)
    net = zoo.build(task, model, preset="authors", tol=1e-3, window=STEPS)
    x = _inputs(task)
    out = net(*x)
    out.pow(2).mean().backward()
    assert all(p.grad is None for p in net.dormant.parameters())
    assert any(p.grad is not None for n, p in net.named_parameters() if not n.startswith("dormant."))
    del net.dormant
    assert torch.equal(out, net(*x))


def test_authors_preset_sets_the_coefficients_of_their_code():
    import math

    pc = zoo.build("pointcloud", "ghbnode", preset="authors")
    assert float(pc.block.field.xi) == 2.0 and not pc.block.field.restoring.learnable
    assert isinstance(pc.block.field.sigma, torch.nn.Identity) and isinstance(pc.head[1], torch.nn.Hardtanh)
    mn = zoo.build("mnist", "ghbnode", preset="authors").block.field
    assert mn.restoring.learnable and abs(float(mn.xi.detach()) - math.log1p(math.exp(2.0))) < 1e-6
    assert float(zoo.build("cifar10", "ghbnode", preset="authors").block.field.xi) == 1.5
    walker = zoo.build("walker2d", "hbnode", preset="authors")
    assert abs(float(walker.rnn.field.xi.detach()) - math.log(2.0)) < 1e-7 and isinstance(walker.rnn.field.sigma, torch.nn.Identity)
    assert type(walker.rnn.cell).__name__ == "Residual" and walker.time_scale == 1 / 64
    paper = zoo.build("walker2d", "hbnode")
    assert type(paper.rnn.cell).__name__ == "Sequential" and paper.time_scale == 1.0


@pytest.mark.parametrize("preset", zoo.PRESETS)
def test_plane_vibration_starts_every_parameter_at_a_hundredth_of_the_default(preset):
    torch.manual_seed(3)
    net = zoo.build("plane_vibration", "hbnode", preset=preset)
    torch.manual_seed(3)
    default = torch.nn.Linear(20, 20)  # the field's first layer, drawn first, at PyTorch's scale
    torch.testing.assert_close(net.rnn.field.f[0].weight, 0.01 * default.weight)
    # γ = sigmoid(0.01 * -3) ≈ 0.49 (spec §5); the authors' HBNODE also learns ξ, from softplus(0)
    assert abs(float(net.rnn.field.gamma.detach()) - torch.sigmoid(torch.tensor(-0.03)).item()) < 1e-6
    if preset == "authors":
        assert abs(float(net.rnn.field.xi.detach()) - torch.log(torch.tensor(2.0)).item()) < 1e-6
    bound = 0.01 / 320 ** 0.5  # the initial state's layer: 64 stamps x 5 features in
    assert float(net.initial.dense.weight.abs().max()) <= bound


def test_plane_vibration_initial_state_reads_the_window_and_the_update_is_residual():
    torch.manual_seed(0)
    net = zoo.build("plane_vibration", "sonode", window=3, tol=1e-3)
    x = torch.randn(3, 2, 5)
    y0 = net.initial(x)
    assert y0.shape == (2, 2, 19)
    torch.testing.assert_close(y0.flatten(1), net.initial.dense(x.transpose(0, 1).reshape(2, 15)))
    cell = net.rnn.cell
    z = torch.randn(2, 2 * 19 + 5)
    p, q, u = z[:, :19], z[:, 19:38], z[:, 38:]
    expected = z[:, :38] + cell.net.parts[0](p) + cell.net.parts[1](q) + cell.net.input(u)
    torch.testing.assert_close(cell(z), expected)
    anode = zoo.build("plane_vibration", "anode", window=3).initial(x)
    assert anode.shape == (2, 27) and bool((anode[:, 5:] == 0).all()) and bool((anode[:, :5] != 0).all())
    with pytest.raises(ValueError, match="first 3 stamps"):
        net.initial(torch.randn(2, 2, 5))


def test_bad_preset_and_window_fail_clearly():
    with pytest.raises(ValueError, match="unknown preset 'author'"):
        zoo.build("mnist", "node", preset="author")
    with pytest.raises(ValueError, match="window must be a positive int"):
        zoo.build("plane_vibration", "node", window=0)


def test_authors_walker_measures_elapsed_time_in_units_of_64_steps():
    torch.manual_seed(0)
    net = zoo.build("walker2d", "ghbnode", preset="authors", tol=1e-5)
    x, dt = torch.randn(3, 2, 17), torch.tensor([[1.0, 2.0], [1.0, 1.0], [3.0, 1.0]])
    with torch.no_grad():
        torch.testing.assert_close(net(x, dt), net.rnn(x, dt / 64))
