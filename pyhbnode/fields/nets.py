"""Building blocks for the user network ``f`` inside a vector field.

A network is either time-independent (called as ``f(h)``) or a :class:`TimeModule`
(called as ``f(t, h)``).  ``TPad`` is the paper's "tpad": it appends a constant channel
equal to ``t`` so that a convolution can see the time (the HBNODE paper, Appendix E).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["TimeModule", "TPad", "TimeSequential", "activation", "mlp", "call_net"]


class TimeModule(nn.Module):
    """Marker base class: a module whose ``forward`` takes ``(t, x)``."""


class TPad(TimeModule):
    """Concatenate a channel filled with ``t`` along dimension 1.

    ``x``: ``(batch, C, *spatial)`` -> ``(batch, C + 1, *spatial)``.
    """

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], 1, *x.shape[2:])
        return torch.cat([x, t.to(x.dtype).expand(shape)], dim=1)


class TimeSequential(TimeModule):
    """Like ``nn.Sequential``, but passes ``t`` to every child that is a :class:`TimeModule`."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(t, x) if isinstance(layer, TimeModule) else layer(x)
        return x


def call_net(net: nn.Module, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``net`` at ``(t, x)``, passing ``t`` only to time-dependent networks."""
    return net(t, x) if isinstance(net, TimeModule) else net(x)


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "lrelu": lambda: nn.LeakyReLU(0.3),
    "htanh": lambda: nn.Hardtanh(-5.0, 5.0),
    "hardtanh": lambda: nn.Hardtanh(-5.0, 5.0),
    "identity": nn.Identity,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str | nn.Module) -> nn.Module:
    """An activation module by name: tanh, relu, elu, lrelu (slope 0.3), htanh/hardtanh
    (clipped to [-5, 5]), identity, sigmoid.  A module is returned unchanged."""
    if isinstance(name, nn.Module):
        return name
    try:
        return _ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)} or an nn.Module"
        ) from None


def mlp(sizes: list[int], act: str | list[str], final: str | None = None) -> nn.Sequential:
    """Dense layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    ``act`` is the activation between layers (one name, or one per hidden layer);
    ``final`` an optional activation after the last layer.
    """
    n_layers = len(sizes) - 1
    acts = [act] * (n_layers - 1) if isinstance(act, str) else list(act)
    if len(acts) != n_layers - 1:
        raise ValueError(f"need {n_layers - 1} hidden activations for sizes {sizes}, got {acts}")
    layers: list[nn.Module] = []
    for i in range(n_layers):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < n_layers - 1:
            layers.append(activation(acts[i]))
    if final is not None:
        layers.append(activation(final))
    return nn.Sequential(*layers)
