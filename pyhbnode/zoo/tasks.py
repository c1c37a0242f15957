"""The paper's architectures, per task (the HBNODE paper, Appendix E).

Notation: fc_n is a dense layer with n outputs; n* = 2n for SONODE's field
input (it sees h and v), n otherwise; HTanh = hardtanh[-5, 5]; LReLU = LeakyReLU(0.3).

Where Appendix E is silent, the layers are the authors' (hedixia/HeavyBallNODE), because the
paper's parameter counts are theirs: the plane-vibration initial state comes from a dense
layer over the whole input window and its recurrent update is residual with one dense layer
per state part; the plane-vibration ANODE-RNN field is n → 3n → 4n → n and SONODE-RNN's
first hidden layer is n* wide; the Walker2D ANODE-RNN's initial data channels come from a
dense layer over the first stamp.  Each task function takes the preset's
:class:`~pyhbnode.zoo.presets.Variant`.
"""

from __future__ import annotations

from torch import nn

from ..fields import TimeSequential, TPad, activation, mlp
from ..layers import ODERNN, ODEBlock
from ..solving import SolverOptions
from .cells import PartwiseLinear, Residual, WindowInitial
from .fields import extra_channels, initial_state, make_field, order_of, start_time
from .models import ContinuousModel, DrivenLinear, DrivenModel, SequenceModel
from .presets import Variant

__all__ = ["SIZES", "pointcloud", "images", "plane_vibration", "walker2d", "silverbox"]

# (n, h) for the ODE-block tasks and (d, n, h1, h2) for the ODE-RNN tasks, as the paper lists them
# except plane vibration's ANODE-RNN h1 (Appendix E: 83) and SONODE-RNN h1 (19): the authors' 81 and
# 38, which give the paper's counts 16,730 and 16,649.
SIZES: dict[str, dict[str, tuple[int, ...]]] = {
    "pointcloud": {
        "node": (2, 20),
        "anode": (3, 20),
        "sonode": (2, 13),
        "hbnode": (2, 14),
        "ghbnode": (2, 14),
        "nesterovnode": (2, 14),
        "gnesterovnode": (2, 14),
        "adamnode": (2, 14),
    },
    "mnist": {
        "node": (1, 92),
        "anode": (6, 64),
        "sonode": (5, 50),
        "hbnode": (5, 50),
        "ghbnode": (6, 45),
        "nesterovnode": (5, 50),
        "gnesterovnode": (5, 50),
        "adamnode": (5, 50),
    },
    "cifar10": {
        "node": (3, 125),
        "anode": (13, 64),
        "sonode": (12, 50),
        "hbnode": (12, 51),
        "ghbnode": (12, 51),
        "nesterovnode": (12, 51),
        "gnesterovnode": (12, 51),
        "adamnode": (15, 31),
    },
    "plane_vibration": {
        "node": (1, 21, 63, 84),
        "anode": (1, 27, 81, 108),
        "sonode": (2, 19, 38, 19),
        "hbnode": (2, 20, 20, 20),
        "ghbnode": (2, 20, 20, 20),
    },
    "walker2d": {
        "node": (1, 24, 72, 48),
        "anode": (1, 24, 72, 48),
        "sonode": (2, 23, 46, 46),
        "hbnode": (2, 24, 48, 48),
        "ghbnode": (2, 24, 48, 48),
        "nesterovnode": (2, 24, 48, 48),
        "gnesterovnode": (2, 24, 48, 48),
    },
    "silverbox": {
        "node": (1,),
        "anode": (2,),
        "sonode": (1,),
        "hbnode": (1,),
        "ghbnode": (1,),
        "nesterovnode": (1,),
        "gnesterovnode": (1,),
        "adamnode": (1,),
    },
}


def _name(task: str, model: str) -> str:
    """How input errors name a zoo model."""
    return f"zoo.build({task!r}, {model!r})"


def _field_input(model: str, n: int) -> int:
    return 2 * n if model == "sonode" else n


def _field(model: str, f: nn.Module, augment: int, v: Variant, field_kwargs: dict):
    return make_field(v.field_model or model, f, augment=augment, **{**v.field_kwargs, **field_kwargs})


def _block(model: str, field, options: SolverOptions) -> ODEBlock:
    """The ODE block over ``[t0, t0 + 1]``: ``[0, 1]``, or ``[1, 2]`` for the Nesterov models."""
    t0 = start_time(model)
    return ODEBlock(field, t0, t0 + 1.0, solver=options)


def pointcloud(model: str, options: SolverOptions, field_kwargs: dict, v: Variant) -> ContinuousModel:
    """2-D points -> a value in (-1, 1): initial velocity 2 → fc_h → HTanh → fc_h → HTanh →
    fc_n; field n* → fc_h → ELU → fc_h → ELU → fc_n; output n → fc_1 → tanh (the authors:
    hardtanh clipped to [-1, 1])."""
    n, h = SIZES["pointcloud"][model]
    order = order_of(model)
    f: nn.Module = mlp([_field_input(model, n) + v.time_input, h, h, n], "elu")
    if v.time_input:
        f = TimeSequential(TPad(), f)
    field = _field(model, f, n - 2, v, field_kwargs)
    velocity = mlp([2, h, h, extra_channels(model, n, 2)], "htanh") if order >= 2 else None
    squash = nn.Hardtanh(-1.0, 1.0) if v.head == "hardtanh" else nn.Tanh()
    head = nn.Sequential(nn.Linear(n, 1), squash)
    return ContinuousModel(
        initial_state(model, n, velocity),
        _block(model, field, options),
        head,
        sample=(2,),
        labels=("coordinates",),
        name=_name("pointcloud", model),
    )


def images(task: str, model: str, options: SolverOptions, field_kwargs: dict, v: Variant) -> ContinuousModel:
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
        TPad(),
        nn.Conv2d(c_in + 1, h, 1),
        nn.ReLU(),
        TPad(),
        nn.Conv2d(h + 1, h, 3, padding=1),
        nn.ReLU(),
        TPad(),
        nn.Conv2d(h + 1, n, 1),
    )
    field = _field(model, f, n - channels, v, field_kwargs)
    velocity = None
    if order >= 2:
        velocity = nn.Sequential(
            nn.Conv2d(channels, h, 1),
            activation("lrelu"),
            nn.Conv2d(h, h, 3, padding=1),
            activation("lrelu"),
            nn.Conv2d(h, extra_channels(model, n, channels), 1),
        )
    head = nn.Sequential(nn.Flatten(), nn.Linear(n * side * side, 10))
    return ContinuousModel(
        initial_state(model, n, velocity),
        _block(model, field, options),
        head,
        sample=(channels, side, side),
        labels=("channels", "height", "width"),
        name=_name(task, model),
    )


# The ANODE-RNNs' initial state fills this many data channels; the rest start at zero.
ANODE_DATA_CHANNELS = 5


def _sequence(
    task: str,
    model: str,
    n: int,
    field,
    cell: nn.Module,
    k: int,
    options: SolverOptions,
    cell_first: bool,
    initial: nn.Module | None,
    v: Variant,
    t0: float = 0.0,
) -> SequenceModel:
    """The ODE-RNN of ``k`` features in and out."""
    rnn = ODERNN(field, cell, nn.Linear(n, k), n, cell_first=cell_first, t0=t0, solver=options)
    return SequenceModel(rnn, initial, time_scale=v.time_scale, features=k, name=_name(task, model))


def plane_vibration(
    model: str, options: SolverOptions, field_kwargs: dict, v: Variant, window: int = 64
) -> SequenceModel:
    """5 features in, 5 out.  Field n* → fc_h1 → ReLU → fc_h2 → ReLU → fc_n; the initial
    state from one dense layer over the ``window`` stamps of the input (ANODE-RNN: to its 5
    data channels, zeros for the augmented ones); recurrent update
    ``y + Σ_parts fc_dn(y_part) + fc_dn(x)``; readout n → fc_5.  ``dt[i]`` is the gap after
    ``x[i]`` (the loader's convention): read, evolve, forecast the next stamp."""
    d, n, h1, h2 = SIZES["plane_vibration"][model]
    k = 5
    data_channels = ANODE_DATA_CHANNELS if model == "anode" else None
    field = _field(model, mlp([_field_input(model, n), h1, h2, n], "relu"), n - (data_channels or n), v, field_kwargs)
    cell = Residual(PartwiseLinear(d, n, k), d * n)
    initial = WindowInitial(window, k, d, n, out=data_channels)
    return _sequence("plane_vibration", model, n, field, cell, k, options, True, initial, v)


def walker2d(model: str, options: SolverOptions, field_kwargs: dict, v: Variant, window: int = 64) -> SequenceModel:
    """17 features in, 17 out.  Field n* → fc_n; RNN cell dn+k → fc_h1 → tanh → fc_h2 →
    tanh → fc_dn (the authors' second-order models: added to the state); readout n → fc_17.
    The authors measure the elapsed times in units of 64 steps (the preset's ``time_scale``).
    The ANODE-RNN's first 5 channels start from a dense layer over the first stamp, the
    others at zero; every other model starts at zero.  (``window`` is unused: the Walker2D
    models read no more than one stamp up front.)"""
    d, n, h1, h2 = SIZES["walker2d"][model]
    k = 17
    anode = model == "anode"
    f = (
        mlp([_field_input(model, n), *v.field_hidden, n], "tanh")
        if v.field_hidden
        else nn.Linear(_field_input(model, n), n)
    )
    field = _field(model, f, n - (ANODE_DATA_CHANNELS if anode else n), v, field_kwargs)
    cell: nn.Module = mlp([d * n + k, h1, h2, d * n], "tanh")
    if v.residual_cell:
        cell = Residual(cell, d * n)
    initial = WindowInitial(1, k, d, n, out=ANODE_DATA_CHANNELS) if anode else None
    return _sequence("walker2d", model, n, field, cell, k, options, False, initial, v, t0=start_time(model))


def silverbox(model: str, options: SolverOptions, field_kwargs: dict, v: Variant) -> DrivenModel:
    """Field n* + 1 → fc_n with the extra input V1(t)^3; initial velocity/momentum from a
    dense network of width 22 on V2(0).  GHBNODE uses σ = hardtanh[-5, 5] and ξ = ln 2
    (χ = 0); γ starts at sigmoid(-3)."""
    (n,) = SIZES["silverbox"][model]
    order = order_of(model)
    if model == "ghbnode":
        field_kwargs = {"sigma": "hardtanh", **field_kwargs}
    drive = DrivenLinear(_field_input(model, n), n)
    field = _field(model, drive, n - 1, v, field_kwargs)
    velocity = mlp([1, 22, extra_channels(model, n, 1)], "tanh") if order >= 2 else None
    t0 = start_time(model)
    return DrivenModel(
        initial_state(model, n, velocity),
        ODEBlock(field, t0, t0 + 1.0, solver=options),
        drive,
        time_offset=t0,
        observed=1,
        name=_name("silverbox", model),
    )
