"""The zoo's two presets: ``"paper"`` (Appendix E and Sec. 1 as written) and ``"authors"``
(what the authors' public code, hedixia/HeavyBallNODE, ran).

Both presets build the same layers (the authors' layer structure, which the paper's parameter
counts require).  They differ in the heavy-ball coefficients, the point-cloud readout and
Walker2D's recurrent update and time unit, all listed in :data:`AUTHORS`.

One initialisation belongs to the layers rather than to a preset: the plane-vibration models
start with every parameter scaled by 0.01, as the authors' training does
(:data:`INIT_SCALE`).  Their residual update ``y + W y + V x`` is unstable over 64 stamps at
PyTorch's default scale: without the scaling, all five models overflowed (loss or gradient
``inf``) in their first iteration on the real data (``pyhbnode reproduce plane-vibration
--standard``, seed 0, measured here).

Translation of the authors' field into ours (the authors' code): their ``dh/dt = σ(-m)``,
``dm/dt = f(h) - γ m + softplus(c)·h`` is GHBNODE under ``m -> -m`` with ``ξ = softplus(c)``;
a frozen ``c`` is a fixed ξ, a trainable ``c`` is a learnable ``ξ = softplus(χ)`` with
``χ`` starting at ``c``; ``c = -100`` is ξ ≈ 0; a constant ``+a·h`` added inside their field
adds ``a`` to ξ.

Dormant scalars: the authors' heavy-ball module registers its correction ``c`` as a parameter
even when it is frozen (``Parameter(frozen=True)`` returns a detached copy of its value, so the
registered tensor is never read), and the point-cloud SONODE notebook registers the γ its field
class never reads.  Their ``count_parameters`` counts these scalars, so the paper's parameter
counts include them.  The authors preset registers the same scalars (:attr:`Variant.dormant`)
as ``model.dormant``, a :class:`~pyhbnode.fields.Dormant`: the model computes exactly what it
computes without them, and training leaves them out of the optimiser, of DDP's reduction and
of the keys a checkpoint must hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

__all__ = ["Variant", "AUTHORS", "FAMILY", "INIT_SCALE", "family_kwargs", "variant", "same_in_both_presets"]


@dataclass(frozen=True)
class Variant:
    """How one (task, model) departs from the paper preset.

    Attributes:
        field_model: the field class to build (``"ghbnode"`` for the authors' plane-vibration and
            Walker2D "HBNODE", which carries a ξ term); ``None`` keeps the model's own.
        field_kwargs: heavy-ball coefficients (``xi``, ``chi``, ``sigma``, ...).
        head: the point-cloud readout's squashing (``"hardtanh"``: clipped to [-1, 1]).
        residual_cell: Walker2D: the recurrent update adds to the state (``y + cell([y, x])``).
        time_scale: ODE-RNNs: the elapsed times are multiplied by this before the solves
            (the authors' Walker2D scripts divide them by 64).
        time_input: point cloud: the field's network also reads ``t`` (one more input; the
            NesterovNODE authors' ``NesterovNODEfunc``).
        field_hidden: Walker2D: hidden tanh layers of the field's network (the NesterovNODE
            authors' ``tempf``: two of width n); empty is the paper's single fc_n.
        init_scale: every parameter multiplied by this after initialisation (the task's
            :data:`INIT_SCALE`, the same in both presets).
        dormant: ``(name, initial value)`` of the scalars the authors' modules register but
            never read (see the module docstring); registered as ``model.dormant[name]``.
        source: where in the authors' code this comes from.
    """

    field_model: str | None = None
    field_kwargs: dict[str, Any] = field(default_factory=dict)
    head: str | None = None
    residual_cell: bool = False
    time_scale: float = 1.0
    time_input: bool = False
    field_hidden: tuple[int, ...] = ()
    init_scale: float | None = None
    dormant: tuple[tuple[str, float], ...] = ()
    source: str = ""


_PV = "plane_vibration/{}_rnn_pv.py"
_WALKER = "walker2d/{}_rnn_walker.py"
# HeavyBallNODE(corr=c, corrf=True): the frozen correction's registered parameter.
_FROZEN_CORR = (("corr", -100.0),)

# (task, model) -> the authors' variant; a pair not listed is the same in both presets.
AUTHORS: dict[tuple[str, str], Variant] = {
    ("pointcloud", "node"): Variant(head="hardtanh", source="point_cloud/nested_n_spheres_(a)node.ipynb"),
    ("pointcloud", "anode"): Variant(head="hardtanh", source="point_cloud/nested_n_spheres_(a)node.ipynb"),
    ("pointcloud", "sonode"): Variant(
        head="hardtanh",
        dormant=(("gamma", -3.0),),
        source="point_cloud/nested_n_spheres_sonode.ipynb (ODEfunc.gamma, unused)",
    ),
    ("pointcloud", "hbnode"): Variant(head="hardtanh", source="point_cloud/nested_n_spheres_hbnode.ipynb"),
    ("pointcloud", "ghbnode"): Variant(
        field_kwargs={"xi": 2.0, "sigma": "identity"},
        head="hardtanh",
        source="point_cloud/nested_n_spheres_ghbnode.ipynb (res = 2, tanhc = identity)",
    ),
    ("mnist", "ghbnode"): Variant(
        field_kwargs={"xi": None, "chi": 2.0}, source="mnist/mnist_full_run.py (corr=2.0, corrf=False, actv_h=Tanh)"
    ),
    ("mnist", "hbnode"): Variant(dormant=_FROZEN_CORR, source="mnist/mnist_full_run.py (HeavyBallNODE(DF(dim, nhid)))"),
    ("cifar10", "hbnode"): Variant(
        dormant=_FROZEN_CORR, source="base.py HeavyBallNODE (frozen corr; the CIFAR script is not public)"
    ),
    ("cifar10", "ghbnode"): Variant(
        field_kwargs={"xi": 1.5},
        dormant=_FROZEN_CORR,
        source="the authors' CIFAR field (1.5·h inside it); base.py HeavyBallNODE (frozen corr)",
    ),
    ("plane_vibration", "hbnode"): Variant(
        field_model="ghbnode",
        field_kwargs={"xi": None, "chi": 0.0, "sigma": "identity"},
        source=_PV.format("hbnode") + " (corr=0, corrf=False)",
    ),
    ("plane_vibration", "ghbnode"): Variant(
        field_kwargs={"xi": None, "chi": 0.0}, source=_PV.format("ghbnode") + " (corr=0, corrf=False, actv_h=Tanh)"
    ),
    ("walker2d", "node"): Variant(time_scale=1 / 64, source=_WALKER.format("node") + " (train_times / 64.0)"),
    ("walker2d", "anode"): Variant(time_scale=1 / 64, source=_WALKER.format("anode") + " (train_times / 64.0)"),
    ("walker2d", "sonode"): Variant(
        residual_cell=True, time_scale=1 / 64, source=_WALKER.format("sonode") + " (out + h, train_times / 64.0)"
    ),
    ("walker2d", "hbnode"): Variant(
        field_model="ghbnode",
        field_kwargs={"xi": math.log(2.0), "sigma": "identity"},
        residual_cell=True,
        time_scale=1 / 64,
        dormant=(("corr", 0.0),),
        source=_WALKER.format("hbnode") + " (corr=0, corrf=True, out + h, times / 64)",
    ),
    ("walker2d", "ghbnode"): Variant(
        field_kwargs={"xi": None, "chi": 1.0},
        residual_cell=True,
        time_scale=1 / 64,
        source=_WALKER.format("ghbnode") + " (corr=1, corrf=False, actv_h=Tanh, out + h, times / 64)",
    ),
}


# The later models (NesterovNODE, GNesterovNODE, AdamNODE): their authors' repositories are the
# sources of their layers; the "authors" preset builds those, the "paper" preset the heavy-ball
# paper's layers of the task (the NesterovNODE paper follows HBNODE's tasks and baselines).
_NAG = "minhtannguyen/NesterovNODE "
_ADAM = "Seunghyeon-Cho/AdamNODE "
# AdamNODEs registers γ (trainable, never read) and two frozen corrections.
_ADAM_DORMANT = (("gamma", -3.0), ("corr", -100.0), ("corr2", -100.0))
AUTHORS.update(
    {
        ("pointcloud", "nesterovnode"): Variant(head="hardtanh", time_input=True, source=_NAG + "nested_n_spheres.py"),
        ("pointcloud", "gnesterovnode"): Variant(head="hardtanh", time_input=True, source=_NAG + "nested_n_spheres.py"),
        ("pointcloud", "adamnode"): Variant(
            head="hardtanh",
            time_input=True,
            dormant=_ADAM_DORMANT,
            source=_NAG + "nested_n_spheres.py layers (AdamNODE's authors ran no "
            "point cloud script); " + _ADAM + "base.py AdamNODEs",
        ),
        ("mnist", "nesterovnode"): Variant(dormant=_FROZEN_CORR, source=_NAG + "mnist/mnist_full_run.py (corr frozen)"),
        ("mnist", "adamnode"): Variant(
            dormant=_ADAM_DORMANT, source=_ADAM + "mnist/mnist_full_run.py, base.py AdamNODEs"
        ),
        ("cifar10", "adamnode"): Variant(
            dormant=(("gamma", -3.0),), source=_ADAM + "cifar10/models.py AdamNODE (gamma unused)"
        ),
        ("walker2d", "nesterovnode"): Variant(
            residual_cell=True,
            time_scale=1 / 64,
            field_hidden=(24, 24),
            dormant=_FROZEN_CORR,
            source=_NAG + "walker2d/nesterovnode_rnn_walker.py (tempf, out + h, times / 64)",
        ),
        ("walker2d", "gnesterovnode"): Variant(
            residual_cell=True,
            time_scale=1 / 64,
            field_hidden=(24, 24),
            source=_NAG + "walker2d/gnesterovnode_rnn_walker.py (tempf, out + h, times / 64)",
        ),
        ("silverbox", "nesterovnode"): Variant(dormant=_FROZEN_CORR, source=_NAG + "silverbox_init.py"),
        ("silverbox", "adamnode"): Variant(dormant=_ADAM_DORMANT, source=_ADAM + "silverbox_init.py"),
    }
)


def _htanh(bound: float) -> Callable[[], nn.Module]:
    return lambda: nn.Hardtanh(-bound, bound)


# The later models' coefficients per task, the same in both presets (each task script of their
# authors states its own; a module is built fresh per model).  Official -> ours: ``sign`` is the
# sign of f in db/dt; a frozen corr c is a fixed ξ = softplus(c) (c = -100: ξ = 0), a trainable
# one a learnable ξ from χ = c; their point-cloud and CIFAR ``xi`` enters as ξ itself.
FAMILY: dict[tuple[str, str], dict[str, Any]] = {
    ("pointcloud", "nesterovnode"): {"sign": -1},
    ("pointcloud", "gnesterovnode"): {
        "sign": -1,
        "xi": 0.5,
        "sigma_h": _htanh(5.0),
        "sigma_f": _htanh(5.0),
        "sigma_k": _htanh(5.0),
    },
    ("mnist", "nesterovnode"): {"sign": -1},
    ("mnist", "gnesterovnode"): {
        "sign": -1,
        "xi": None,
        "chi": 2.0,
        "sigma_h": _htanh(0.5),
        "sigma_f": _htanh(0.5),
        "sigma_k": _htanh(0.5),
    },
    ("cifar10", "gnesterovnode"): {"xi": 1.5, "sigma_h": "tanh", "sigma_f": "tanh", "sigma_k": "tanh"},
    ("cifar10", "adamnode"): {"second_moment": "sigmoid", "alpha1": 3.0, "alpha2": 3.0},
    ("walker2d", "gnesterovnode"): {"xi": None, "chi": 0.0, "sigma_out": "tanh"},
    ("silverbox", "gnesterovnode"): {
        "xi": None,
        "chi": 0.0,
        "sigma_h": _htanh(0.25),
        "sigma_f": _htanh(0.25),
        "sigma_k": _htanh(0.25),
    },
}


def family_kwargs(task: str, model: str) -> dict[str, Any]:
    """The field coefficients of :data:`FAMILY` for ``(task, model)``, modules built fresh."""
    return {
        k: v() if callable(v) and not isinstance(v, nn.Module) else v for k, v in FAMILY.get((task, model), {}).items()
    }


# Every parameter is multiplied by this after initialisation, in both presets (plane_vibration/
# trainpv.py: shrink_parameters(model, 0.01)).
INIT_SCALE: dict[str, float] = {"plane_vibration": 0.01}


def variant(task: str, model: str, preset: str) -> Variant:
    """The departures of ``preset`` for ``(task, model)`` (none for ``"paper"``), with the
    task's :data:`INIT_SCALE`."""
    v = Variant() if preset == "paper" else AUTHORS.get((task, model), Variant())
    return replace(v, init_scale=INIT_SCALE.get(task))


def same_in_both_presets(task: str, model: str) -> bool:
    """Whether both presets build ``(task, model)`` as the same computation (dormant scalars,
    which nothing reads, aside)."""
    v = AUTHORS.get((task, model))
    return v is None or replace(v, dormant=(), source="") == Variant()
