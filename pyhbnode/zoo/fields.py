"""One factory from a model name to its vector field, shared by every task."""

from __future__ import annotations

from torch import nn

from ..fields import (
    ANODE,
    GHBNODE,
    HBNODE,
    NODE,
    SONODE,
    AdamNODE,
    GNesterovNODE,
    InitialState,
    MomentInitialState,
    NesterovNODE,
    VectorField,
)

__all__ = [
    "MODELS",
    "PAPER_MODELS",
    "NAMES",
    "RUNS_ON",
    "runs_on",
    "models_for",
    "make_field",
    "order_of",
    "start_time",
    "extra_channels",
    "initial_state",
    "check_task",
]

# The heavy-ball paper's five: what ``compare`` and ``reproduce`` run unless told otherwise.
PAPER_MODELS = ("node", "anode", "sonode", "hbnode", "ghbnode")
MODELS = (*PAPER_MODELS, "nesterovnode", "gnesterovnode", "adamnode")
# How tables, figures and messages write each model: its papers' spelling.
NAMES = {
    "node": "NODE",
    "anode": "ANODE",
    "sonode": "SONODE",
    "hbnode": "HBNODE",
    "ghbnode": "GHBNODE",
    "nesterovnode": "NesterovNODE",
    "gnesterovnode": "GNesterovNODE",
    "adamnode": "AdamNODE",
}

# The tasks each later model's authors ran it on (their repositories' scripts); the heavy-ball
# five run on every task.
RUNS_ON: dict[str, tuple[str, ...]] = {
    "nesterovnode": ("pointcloud", "mnist", "cifar10", "walker2d", "silverbox"),
    "gnesterovnode": ("pointcloud", "mnist", "cifar10", "walker2d", "silverbox"),
    "adamnode": ("pointcloud", "mnist", "cifar10", "silverbox"),
}


def runs_on(task: str, model: str) -> bool:
    """Whether the zoo has a ``task`` architecture for ``model`` (the heavy-ball five: every task)."""
    return task in RUNS_ON.get(model, (task,))


def models_for(task: str) -> tuple[str, ...]:
    """Every model the zoo builds for ``task``, in ``MODELS`` order."""
    return tuple(m for m in MODELS if runs_on(task, m))


def check_task(task: str, model: str) -> None:
    """Refuse a task ``model``'s authors did not run: the zoo has no architecture for it."""
    if not runs_on(task, model):
        tasks = RUNS_ON[model]
        raise ValueError(
            f"the zoo has no {task!r} architecture for model {model!r}: its authors ran it on "
            f"{list(tasks)} only; choose one of those tasks or another model"
        )


def order_of(model: str) -> int:
    """Parts of the model's state: 1 (h), 2 (h and m/v; Nesterov's a and b) or 3 (AdamNODE's h, m, v)."""
    if model == "adamnode":
        return 3
    return 2 if model in ("sonode", "hbnode", "ghbnode", "nesterovnode", "gnesterovnode") else 1


def start_time(model: str) -> float:
    """Where the model's integration starts: NesterovNODE's ``k(t)`` is singular at 0, so its
    authors integrate over ``[1, 2]``; the others start at 0."""
    return 1.0 if model in ("nesterovnode", "gnesterovnode") else 0.0


def extra_channels(model: str, n: int, c: int) -> int:
    """Channels the initial-state network adds to an input of ``c`` channels for a state of
    width ``n``: ``2n - c`` (order 2) or ``(3n - c) / 2`` (AdamNODE's ``[x, g, g²]``)."""
    return (3 * n - c) // 2 if order_of(model) == 3 else order_of(model) * n - c


def initial_state(model: str, n: int, net: nn.Module | None) -> nn.Module:
    """The initial-state builder of ``model`` for width ``n`` around the network ``net``."""
    if order_of(model) == 3:
        assert net is not None  # the tasks build a net for every model of order >= 2
        return MomentInitialState(n, net)
    return InitialState(order_of(model), n, net)


def make_field(model: str, f: nn.Module, *, augment: int = 0, **field_kwargs) -> VectorField:
    """The field of ``model`` around network ``f``.

    ``augment`` is ANODE's number of zero channels; ``field_kwargs`` go to the field's
    constructor (HBNODE/GHBNODE: ``gamma``, ``omega``, ``eps``, ``xi``, ``chi``, ``sigma``; the
    later models: see :mod:`pyhbnode.fields.momentum`)."""
    if model == "node":
        return NODE(f)
    if model == "anode":
        return ANODE(f, augment)
    if model == "sonode":
        return SONODE(f)
    if model == "hbnode":
        return HBNODE(f, **field_kwargs)
    if model == "ghbnode":
        return GHBNODE(f, **field_kwargs)
    if model == "nesterovnode":
        return NesterovNODE(f, **field_kwargs)
    if model == "gnesterovnode":
        return GNesterovNODE(f, **field_kwargs)
    if model == "adamnode":
        return AdamNODE(f, **field_kwargs)
    raise ValueError(f"unknown model {model!r}; choose one of {list(MODELS)}")
