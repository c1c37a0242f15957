"""One factory from a model name to its vector field, shared by every task."""
from __future__ import annotations

from torch import nn

from ..fields import ANODE, GHBNODE, HBNODE, NODE, SONODE, VectorField

__all__ = ["MODELS", "make_field", "order_of"]

MODELS = ("node", "anode", "sonode", "hbnode", "ghbnode")


def order_of(model: str) -> int:
    return 2 if model in ("sonode", "hbnode", "ghbnode") else 1


def make_field(model: str, f: nn.Module, *, augment: int = 0, **field_kwargs) -> VectorField:
    """The field of ``model`` around network ``f``.

    ``augment`` is ANODE's number of zero channels; ``field_kwargs`` go to HBNODE/GHBNODE
    (``gamma``, ``omega``, ``eps``, and for GHBNODE ``xi``, ``chi``, ``sigma``)."""
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
    raise ValueError(f"unknown model {model!r}; choose one of {list(MODELS)}")
