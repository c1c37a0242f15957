"""The paper's architectures, per task (spec §4 "Architectures", Appendix E).

Notation of the spec: fc_n is a dense layer with n outputs; n* = 2n for SONODE's field
input (it sees h and v), n otherwise; HTanh = hardtanh[-5, 5]; LReLU = LeakyReLU(0.3).
"""
from __future__ import annotations

from torch import nn

from ..fields import InitialState, TimeSequential, TPad, activation, mlp
from ..layers import ODERNN, ODEBlock
from ..solving import SolverOptions
from .fields import make_field, order_of
from .models import ContinuousModel, DrivenLinear, DrivenModel, SequenceModel

__all__ = ["SIZES", "TASK_DEFAULTS", "pointcloud", "images", "plane_vibration", "walker2d", "silverbox"]

# (n, h) for the ODE-block tasks and (d, n, h1, h2) for the ODE-RNN tasks, as the spec lists them.
SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "pointcloud": {"node": (2, 20), "anode": (3, 20), "sonode": (2, 13), "hbnode": (2, 14), "ghbnode": (2, 14)},
    "mnist": {"node": (1, 92), "anode": (6, 64), "sonode": (5, 50), "hbnode": (5, 50), "ghbnode": (6, 45)},
    "cifar10": {"node": (3, 125), "anode": (13, 64), "sonode": (12, 50), "hbnode": (12, 51), "ghbnode": (12, 51)},
    "plane_vibration": {
        "node": (1, 21, 63, 84), "anode": (1, 27, 83, 108), "sonode": (2, 19, 19, 19),
        "hbnode": (2, 20, 20, 20), "ghbnode": (2, 20, 20, 20),
    },
    "walker2d": {
        "node": (1, 24, 72, 48), "anode": (1, 24, 72, 48), "sonode": (2, 23, 46, 46),
        "hbnode": (2, 24, 48, 48), "ghbnode": (2, 24, 48, 48),
    },
    "silverbox": {"node": (1,), "anode": (2,), "sonode": (1,), "hbnode": (1,), "ghbnode": (1,)},
}

# Solver tolerance per task (spec §4 table); the zoo's default when none is given.
TASK_DEFAULTS: dict[str, SolverOptions] = {
    "pointcloud": SolverOptions(rtol=1e-7, atol=1e-7),
    "mnist": SolverOptions(rtol=1e-5, atol=1e-5),
    "cifar10": SolverOptions(rtol=1e-5, atol=1e-5),
    "plane_vibration": SolverOptions(rtol=1e-7, atol=1e-7),
    "walker2d": SolverOptions(rtol=1e-7, atol=1e-7),
    "silverbox": SolverOptions(rtol=1e-7, atol=1e-7),
}


def _field_input(model: str, n: int) -> int:
    return 2 * n if model == "sonode" else n


def pointcloud(model: str, options: SolverOptions, field_kwargs: dict) -> ContinuousModel:
    """2-D points -> a value in (-1, 1): initial velocity 2 → fc_h → HTanh → fc_h → HTanh →
    fc_n; field n* → fc_h → ELU → fc_h → ELU → fc_n; output n → fc_1 → tanh."""
    n, h = SIZES["pointcloud"][model]
    order = order_of(model)
    f = mlp([_field_input(model, n), h, h, n], "elu")
    field = make_field(model, f, augment=n - 2, **field_kwargs)
    velocity = mlp([2, h, h, n], "htanh") if order == 2 else None
    head = nn.Sequential(nn.Linear(n, 1), nn.Tanh())
    return ContinuousModel(InitialState(order, n, velocity), ODEBlock(field, options=options), head)


def images(task: str, model: str, options: SolverOptions, field_kwargs: dict) -> ContinuousModel:
    """MNIST (1×28×28) or CIFAR-10 (3×32×32) -> 10 logits.

    Initial velocity C → conv_{h,1×1} → LReLU → conv_{h,3×3} → LReLU → conv_{2n-C,1×1};
    field n* → tpad → conv_{h,1×1} → ReLU → tpad → conv_{h,3×3} → ReLU → tpad → conv_{n,1×1};
    output flatten → fc_10.  NODE takes the image as its state (n = C), ANODE pads it with
    zero channels."""
    channels, side = (1, 28) if task == "mnist" else (3, 32)
    n, h = SIZES[task][model]
    order = order_of(model)
    c_in = _field_input(model, n)
    f = TimeSequential(
        TPad(), nn.Conv2d(c_in + 1, h, 1), nn.ReLU(),
        TPad(), nn.Conv2d(h + 1, h, 3, padding=1), nn.ReLU(),
        TPad(), nn.Conv2d(h + 1, n, 1),
    )
    field = make_field(model, f, augment=n - channels, **field_kwargs)
    velocity = None
    if order == 2:
        velocity = nn.Sequential(
            nn.Conv2d(channels, h, 1), activation("lrelu"),
            nn.Conv2d(h, h, 3, padding=1), activation("lrelu"),
            nn.Conv2d(h, 2 * n - channels, 1),
        )
    head = nn.Sequential(nn.Flatten(), nn.Linear(n * side * side, 10))
    return ContinuousModel(InitialState(order, n, velocity), ODEBlock(field, options=options), head)


def _sequence(model: str, sizes: tuple[int, ...], f: nn.Module, cell: nn.Module, out: int,
              options: SolverOptions, field_kwargs: dict, reference_width: int,
              cell_first: bool) -> SequenceModel:
    n = sizes[1]
    field = make_field(model, f, augment=n - reference_width, **field_kwargs)
    return SequenceModel(ODERNN(field, cell, nn.Linear(n, out), n, cell_first=cell_first, options=options))


def plane_vibration(model: str, options: SolverOptions, field_kwargs: dict) -> SequenceModel:
    """5 features in, 5 out.  Field n* → fc_h1 → ReLU → fc_h2 → ReLU → fc_n; RNN cell
    dn+k → fc_dn; readout n → fc_5.  ``dt[i]`` is the gap after ``x[i]`` (the loader's
    convention): read, evolve, forecast the next stamp."""
    d, n, h1, h2 = sizes = SIZES["plane_vibration"][model]
    k = 5
    f = mlp([_field_input(model, n), h1, h2, n], "relu")
    cell = nn.Linear(d * n + k, d * n)
    return _sequence(model, sizes, f, cell, k, options, field_kwargs, SIZES["plane_vibration"]["node"][1],
                     cell_first=True)


def walker2d(model: str, options: SolverOptions, field_kwargs: dict) -> SequenceModel:
    """17 features in, 17 out.  Field n* → fc_n; RNN cell dn+k → fc_h1 → tanh → fc_h2 →
    tanh → fc_dn; readout n → fc_17."""
    d, n, h1, h2 = sizes = SIZES["walker2d"][model]
    k = 17
    f = nn.Linear(_field_input(model, n), n)
    cell = mlp([d * n + k, h1, h2, d * n], "tanh")
    return _sequence(model, sizes, f, cell, k, options, field_kwargs, SIZES["walker2d"]["node"][1],
                     cell_first=False)


def silverbox(model: str, options: SolverOptions, field_kwargs: dict) -> DrivenModel:
    """Field n* + 1 → fc_n with the extra input V1(t)^3; initial velocity/momentum from a
    dense network of width 22 on V2(0).  GHBNODE uses σ = hardtanh[-5, 5] and ξ = ln 2
    (χ = 0); γ starts at sigmoid(-3)."""
    (n,) = SIZES["silverbox"][model]
    order = order_of(model)
    if model == "ghbnode":
        field_kwargs = {"sigma": "hardtanh", **field_kwargs}
    drive = DrivenLinear(_field_input(model, n), n)
    field = make_field(model, drive, augment=n - 1, **field_kwargs)
    velocity = mlp([1, 22, n], "tanh") if order == 2 else None
    return DrivenModel(InitialState(order, n, velocity), ODEBlock(field, options=options), drive)
