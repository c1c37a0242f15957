"""Describe a pyhbnode vector field as a JSON *spec* plus one flat parameter vector.

The Julia package ``PyHBNODEBridge`` rebuilds the field from the spec (plain functions
reading ``reshape(p[range], size)`` blocks of the flat vector, ``src/field.jl``) and solves
it forward and backward entirely in Julia.

Layout rules (torch is row-major, Julia column-major; a torch tensor of shape ``(a, b, c)``
is the Julia array of size ``(c, b, a)`` over the same memory):

* state ``(B, *S)`` travels flat and is read in Julia as ``reverse((B, *S))``; an image
  batch ``(B, C, H, W)`` becomes WHCN ``(W, H, C, B)``, a heavy-ball state ``(B, 2, D)``
  becomes ``(D, 2, B)``;
* a dense weight ``W (out, in)`` is packed as ``W.t()`` flattened, which is the
  ``(out, in)`` column-major matrix Julia multiplies with; ``torch.nn.Linear`` acts on the
  last torch dimension, Julia's ``W * x`` on the first Julia dimension, the same axis;
* a conv weight ``(O, I/g, kH, kW)`` is packed as is and read as ``(kW, kH, I/g, O)``;
  kernel, stride, dilation and padding tuples are reversed to Julia's spatial order
  ``(w, h)``; padding is sent as ``(lo_w, hi_w, lo_h, hi_h)``; torch convolutions are
  cross-correlations, which is ``NNlib.conv(...; flipped=true)``;
* ``TPad`` appends the time channel along torch dim 1 = Julia dim ``ndims - 1``;
* the flat vector is ``[layer params in order (weight, bias)..., ω?, χ?]``; every entry of
  the spec's ``params`` names its key (``layer_<i>``, ``omega``, ``chi``), role, offset and
  size, and the Julia side checks that they tile the vector in this order.

Anything outside this whitelist raises :class:`~pyhbnode.NotTranslatableError` naming the
layer; use ``backend="torchdiffeq"`` (or ``"torch"``) for such fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ....fields.coefficients import Damping, Restoring
from ....fields.models import ANODE, GHBNODE, HBNODE, NODE, SONODE, VectorField
from ....fields.nets import TimeSequential, TPad
from .errors import NotTranslatableError

__all__ = ["SPEC_FORMAT", "FieldSpec", "describe", "pack_parameters", "unpack_parameters", "SUPPORTED_LAYERS"]

SPEC_FORMAT = 2  # PyHBNODEBridge.SPEC_FORMAT must match

SUPPORTED_LAYERS = (
    "nn.Linear, nn.Conv1d/2d/3d (zero padding), TPad, nn.Sequential, TimeSequential, "
    "nn.Tanh, nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Hardtanh, nn.Sigmoid, nn.Softplus, "
    "nn.Identity"
)


@dataclass(frozen=True)
class FieldSpec:
    """A field's Julia description.

    Attributes:
        json: the canonical JSON text sent to Julia (also the cache key of the built field:
            it holds the structure only, never parameter values).
        n_params: length of the flat parameter vector.
        pieces: one callable per parameter block, each returning the block flattened in
            Julia (column-major) order; ``torch.cat`` of them is the flat vector and is
            differentiable, so autograd routes Julia's ``dp`` back to every Parameter.
        names: the torch names of the blocks, in order (for error messages and tests).
    """

    json: str
    n_params: int
    pieces: tuple[Callable[[], torch.Tensor], ...]
    names: tuple[str, ...]

    @property
    def data(self) -> dict:
        return json.loads(self.json)


def _overrides_forward(module: nn.Module, base: type[nn.Module]) -> bool:
    return type(module).forward is not base.forward


def _flat(module: nn.Module, name: str) -> Callable[[], torch.Tensor]:
    """``module.<name>`` flattened, read when called: the pieces are read at every solve."""
    return lambda: getattr(module, name).reshape(-1)


def _fail(path: str, module: nn.Module, why: str = "") -> NotTranslatableError:
    detail = f" ({why})" if why else ""
    return NotTranslatableError(
        f"layer {path!r} ({type(module).__name__}){detail} has no Julia translation; the "
        f"julia backend supports {SUPPORTED_LAYERS}. Use backend='torchdiffeq' for this field."
    )


_SIMPLE_ACTS: dict[type, str] = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.Sigmoid: "sigmoid"}


def activation_spec(module: nn.Module, path: str) -> dict | None:
    """The spec of an activation module, ``None`` for the identity; raises if unsupported."""
    for cls, fn in _SIMPLE_ACTS.items():
        if type(module) is cls:
            return {"kind": "act", "fn": fn}
    if type(module) is nn.Identity:
        return None
    if type(module) is nn.ELU:
        return {"kind": "act", "fn": "elu", "alpha": float(module.alpha)}
    if type(module) is nn.LeakyReLU:
        return {"kind": "act", "fn": "lrelu", "slope": float(module.negative_slope)}
    if isinstance(module, nn.Hardtanh) and not _overrides_forward(module, nn.Hardtanh):
        return {"kind": "act", "fn": "hardtanh", "lo": float(module.min_val), "hi": float(module.max_val)}
    if type(module) is nn.Softplus:
        # torch returns x where beta*x > threshold: the Julia twin does the same.
        return {"kind": "act", "fn": "softplus", "beta": float(module.beta), "threshold": float(module.threshold)}
    raise _fail(path, module)


def _conv_padding(conv: nn.modules.conv._ConvNd, path: str) -> list[int]:
    """Julia padding ``(lo, hi)`` per Julia spatial dim (= torch spatial dims reversed)."""
    if conv.padding_mode != "zeros":
        raise _fail(path, conv, f"padding_mode={conv.padding_mode!r}; only 'zeros'")
    k, d = conv.kernel_size, conv.dilation
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            pairs = [(0, 0)] * len(k)
        else:  # "same" (torch allows it with stride 1 only): extra padding goes at the end
            pairs = []
            for ki, di in zip(k, d, strict=True):
                total = di * (ki - 1)
                pairs.append((total // 2, total - total // 2))
    else:
        pairs = [(int(p), int(p)) for p in conv.padding]
    out: list[int] = []
    for lo, hi in reversed(pairs):
        out += [lo, hi]
    return out


class _Builder:
    def __init__(self) -> None:
        self.layers: list[dict] = []
        self.params: list[dict] = []
        self.pieces: list[Callable[[], torch.Tensor]] = []
        self.names: list[str] = []
        self.offset = 0

    def add_param(self, key: str, role: str, name: str, size: list[int], piece: Callable[[], torch.Tensor]) -> None:
        n = 1
        for s in size:
            n *= int(s)
        self.params.append({"key": key, "role": role, "name": name, "offset": self.offset, "size": size})
        self.pieces.append(piece)
        self.names.append(name)
        self.offset += n

    def walk(self, module: nn.Module, path: str) -> None:
        if type(module) in (nn.Sequential, TimeSequential):
            children = module.layers if isinstance(module, TimeSequential) else module.children()
            for i, child in enumerate(children):
                self.walk(child, f"{path}.{i}" if not isinstance(module, TimeSequential) else f"{path}.layers.{i}")
            return
        if type(module) is TPad:
            self.layers.append({"kind": "tpad"})
            return
        if type(module) is nn.Linear:
            self._linear(module, path)
            return
        if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
            assert isinstance(module, nn.modules.conv._ConvNd)  # exact types above: subclasses may differ
            self._conv(module, path)
            return
        spec = activation_spec(module, path)
        if spec is not None:
            self.layers.append(spec)

    def _key(self) -> str:
        return f"layer_{len(self.layers) + 1}"

    def _linear(self, lin: nn.Linear, path: str) -> None:
        key = self._key()
        self.layers.append(
            {
                "kind": "dense",
                "key": key,
                "in": lin.in_features,
                "out": lin.out_features,
                "bias": lin.bias is not None,
            }
        )
        self.add_param(
            key, "weight", f"{path}.weight", [lin.out_features, lin.in_features], lambda: lin.weight.t().reshape(-1)
        )
        if lin.bias is not None:
            self.add_param(key, "bias", f"{path}.bias", [lin.out_features], _flat(lin, "bias"))

    def _conv(self, conv: nn.modules.conv._ConvNd, path: str) -> None:
        if getattr(conv, "transposed", False):
            raise _fail(path, conv, "transposed convolution")
        key = self._key()
        pad = _conv_padding(conv, path)
        kernel = [int(k) for k in reversed(conv.kernel_size)]
        self.layers.append(
            {
                "kind": "conv",
                "key": key,
                "in": conv.in_channels,
                "out": conv.out_channels,
                "kernel": kernel,
                "stride": [int(s) for s in reversed(conv.stride)],
                "dilation": [int(d) for d in reversed(conv.dilation)],
                "pad": pad,
                "groups": int(conv.groups),
                "bias": conv.bias is not None,
            }
        )
        self.add_param(
            key,
            "weight",
            f"{path}.weight",
            kernel + [conv.in_channels // conv.groups, conv.out_channels],
            _flat(conv, "weight"),
        )
        if conv.bias is not None:
            self.add_param(key, "bias", f"{path}.bias", [conv.out_channels], _flat(conv, "bias"))


def _damping_spec(d: Damping, b: _Builder, path: str) -> dict:
    if d.omega is None:
        return {"kind": "fixed", "value": float(d.fixed)}
    b.add_param("omega", "value", f"{path}.omega", [1], _flat(d, "omega"))
    return {"kind": "sigmoid", "eps": float(d.eps)}


def _restoring_spec(r: Restoring, b: _Builder, path: str) -> dict:
    if r.chi is None:
        return {"kind": "fixed", "value": float(r.fixed)}
    b.add_param("chi", "value", f"{path}.chi", [1], _flat(r, "chi"))
    return {"kind": "softplus"}


def describe(field: nn.Module) -> FieldSpec:
    """The Julia spec of ``field``; raises :class:`NotTranslatableError` when some part has
    no Julia counterpart (the message names the layer)."""
    if not isinstance(field, VectorField):
        raise NotTranslatableError(
            f"the julia backend solves pyhbnode's vector fields (NODE, ANODE, SONODE, HBNODE, "
            f"GHBNODE); got {type(field).__name__}. Use backend='torchdiffeq' for other modules."
        )
    if not isinstance(field, (NODE, SONODE, GHBNODE)):
        # The Julia package rebuilds only the heavy-ball five; NesterovNODE (with its readout),
        # GNesterovNODE and AdamNODE have no counterpart there.
        raise NotTranslatableError(
            f"the julia backend has no {type(field).__name__} model: it translates NODE, ANODE, SONODE, "
            "HBNODE and GHBNODE only. Solve it with backend='torch' or backend='torchdiffeq'."
        )
    b = _Builder()
    data: dict = {"format": SPEC_FORMAT}
    if isinstance(field, GHBNODE) and not _overrides_forward(field, GHBNODE):
        data["model"] = "hbnode" if isinstance(field, HBNODE) else "ghbnode"
        data["kind"] = "heavyball"
        b.walk(field.f, "f")
        # ω and χ come after the network, in this order.
        data["gamma"] = _damping_spec(field.damping, b, "damping")
        data["xi"] = _restoring_spec(field.restoring, b, "restoring")
        sigma = activation_spec(field.sigma, "sigma")
        data["sigma"] = sigma if sigma is not None else {"kind": "act", "fn": "identity"}
    elif isinstance(field, SONODE) and not _overrides_forward(field, SONODE):
        data["model"], data["kind"] = "sonode", "sonode"
        b.walk(field.f, "f")
    elif isinstance(field, NODE) and not _overrides_forward(field, NODE):
        data["model"] = "anode" if isinstance(field, ANODE) else "node"
        data["kind"] = "first_order"
        b.walk(field.f, "f")
    else:
        raise NotTranslatableError(
            f"{type(field).__name__} overrides forward(); the julia backend only rebuilds the "
            "five standard fields. Use backend='torchdiffeq' for this field."
        )
    data["order"] = int(field.order)
    data["net"] = b.layers
    data["params"] = b.params
    data["n_params"] = b.offset
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return FieldSpec(json=text, n_params=b.offset, pieces=tuple(b.pieces), names=tuple(b.names))


def unpack_parameters(spec: FieldSpec, field: nn.Module, flat: torch.Tensor) -> None:
    """Set ``field``'s parameters from a flat Julia-ordered vector (the inverse of
    :func:`pack_parameters`; for fixtures and tests)."""
    dense = {e["key"] for e in spec.data["net"] if e["kind"] == "dense"}
    with torch.no_grad():
        for entry in spec.data["params"]:
            n = 1
            for s in entry["size"]:
                n *= int(s)
            block = flat[entry["offset"] : entry["offset"] + n]
            param = field.get_parameter(entry["name"])
            if entry["key"] in dense and entry["role"] == "weight":
                out_f, in_f = entry["size"]
                param.copy_(block.reshape(in_f, out_f).t())  # column-major (out, in)
            else:
                param.copy_(block.reshape(param.shape))


def pack_parameters(spec: FieldSpec, like: torch.Tensor | None = None) -> torch.Tensor:
    """The flat parameter vector ``(n_params,)`` in Julia order (differentiable)."""
    if not spec.pieces:
        if like is None:
            return torch.zeros(0)
        return like.new_zeros(0)
    return torch.cat([piece() for piece in spec.pieces])
