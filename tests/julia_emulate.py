"""A numpy emulation of the Julia side of the bridge (``PyHBNODEBridge``), for tests.

(A test helper, not part of the package: the wheel ships only the Julia package itself.)

It reads the same JSON spec and flat parameter vector as the Julia package and evaluates
the right-hand side on *Julia-shaped* arrays: every array here is what Julia would hold,
stored in Fortran (column-major) order, and every reshape uses ``order="F"``.  Each
function mirrors the Julia function of the same name in
``PyHBNODEBridge/src/field.jl``, so a test that checks this emulation against
torch checks the packing and layout rules that the Julia code relies on (weight
transposes, conv kernel and padding orientation, the time-padding channel, the halves of a
second-order state) without needing Julia.

Conversions (what DLPack does for a contiguous tensor): :func:`to_julia_layout` and
:func:`to_torch_layout`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["to_julia_layout", "to_torch_layout", "EmulatedField", "build"]


def to_julia_layout(x: np.ndarray) -> np.ndarray:
    """The Julia view of a row-major array: same memory, dimensions reversed."""
    x = np.ascontiguousarray(x)
    return x.reshape(-1).reshape(tuple(reversed(x.shape)), order="F")


def to_torch_layout(a: np.ndarray) -> np.ndarray:
    """The row-major (torch) view of a Julia-shaped array: same memory order, dims reversed."""
    return np.asarray(a).reshape(-1, order="F").reshape(tuple(reversed(a.shape)))


# --- activations (field.jl: make_act) --------------------------------------------------

def _softplus(x, beta: float = 1.0, threshold: float = 20.0):
    """torch's Softplus: ``x`` where ``beta * x > threshold``."""
    soft = (np.log1p(np.exp(-np.abs(beta * x))) + np.maximum(beta * x, 0)) / beta
    return np.where(beta * x > threshold, x, soft)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def make_act(d: dict):
    fn = d["fn"]
    if fn == "tanh":
        return np.tanh
    if fn == "relu":
        return lambda x: np.maximum(x, 0)
    if fn == "elu":
        a = float(d["alpha"])
        return lambda x: np.where(x > 0, x, a * (np.exp(np.minimum(x, 0)) - 1))
    if fn == "lrelu":
        s = float(d["slope"])
        return lambda x: np.where(x > 0, x, s * x)
    if fn == "hardtanh":
        lo, hi = float(d["lo"]), float(d["hi"])
        return lambda x: np.clip(x, lo, hi)
    if fn == "sigmoid":
        return _sigmoid
    if fn == "softplus":
        beta, threshold = float(d["beta"]), float(d["threshold"])
        return lambda x: _softplus(x, beta, threshold)
    if fn == "identity":
        return None
    raise ValueError(f"unknown activation {fn!r}")


# --- layers (field.jl) -----------------------------------------------------------------

def tpad(x: np.ndarray, t: float) -> np.ndarray:
    """Append a channel filled with ``t`` along Julia dim ``ndims - 1`` (torch dim 1)."""
    n = x.ndim
    shape = tuple(1 if i == n - 2 else x.shape[i] for i in range(n))
    return np.concatenate([x, np.full(shape, t, dtype=x.dtype)], axis=n - 2)


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``Dense`` on a Julia array ``(in, rest...)``: ``W * x .+ b``."""
    rest = x.shape[1:]
    y = w @ x.reshape(x.shape[0], -1, order="F")
    if b is not None:
        y = y + b[:, None]
    return y.reshape((w.shape[0],) + rest, order="F")


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride, dilation, pad, groups: int) -> np.ndarray:
    """``NNlib.conv(...; flipped=true)`` (cross-correlation) on WHCN-ordered arrays.

    ``x``: ``(S_1, ..., S_N, C_in, B)``; ``w``: ``(k_1, ..., k_N, C_in/groups, C_out)``;
    ``pad``: ``(lo_1, hi_1, lo_2, hi_2, ...)``.  ``y[o, co, b] = bias[co] + Σ_{k, ci}
    x_pad[o·s + k·d, ci, b] · w[k, ci, co]`` (no kernel flip)."""
    nsp = x.ndim - 2
    widths = [(pad[2 * i], pad[2 * i + 1]) for i in range(nsp)] + [(0, 0), (0, 0)]
    xp = np.pad(x, widths)
    kernel = w.shape[:nsp]
    cin_g, cout = w.shape[nsp], w.shape[nsp + 1]
    out_sp = [
        (xp.shape[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nsp)
    ]
    batch = x.shape[-1]
    y = np.zeros(tuple(out_sp) + (cout, batch), dtype=x.dtype)
    cout_g = cout // groups
    for g in range(groups):
        xin = xp[..., g * cin_g:(g + 1) * cin_g, :]
        wg = w[..., g * cout_g:(g + 1) * cout_g]
        for k in np.ndindex(*kernel):
            sl = tuple(
                slice(k[i] * dilation[i], k[i] * dilation[i] + stride[i] * (out_sp[i] - 1) + 1, stride[i])
                for i in range(nsp)
            )
            patch = xin[sl]  # (out..., cin_g, B)
            y[..., g * cout_g:(g + 1) * cout_g, :] += np.einsum("...cb,co->...ob", patch, wg[k])
    if b is not None:
        y = y + b.reshape((1,) * nsp + (cout, 1))
    return y


# --- the field (field.jl) --------------------------------------------------------------

@dataclass
class EmulatedField:
    """A field rebuilt from a spec, evaluated on Julia-shaped arrays."""

    spec: dict

    def params(self, p: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        """The parameter blocks: ``(key, role) -> array`` read column-major from ``p``."""
        out = {}
        for e in self.spec["params"]:
            n = int(np.prod(e["size"]))
            out[(e["key"], e["role"])] = p[e["offset"]:e["offset"] + n].reshape(e["size"], order="F")
        return out

    def apply_ops(self, x: np.ndarray, theta: dict, t: float) -> np.ndarray:
        for op in self.spec["net"]:
            kind = op["kind"]
            if kind == "tpad":
                x = tpad(x, t)
            elif kind == "act":
                f = make_act(op)
                if f is not None:
                    x = f(x)
            elif kind == "dense":
                x = dense(x, theta[(op["key"], "weight")], theta.get((op["key"], "bias")))
            elif kind == "conv":
                x = conv(x, theta[(op["key"], "weight")], theta.get((op["key"], "bias")),
                         op["stride"], op["dilation"], op["pad"], op["groups"])
            else:
                raise ValueError(f"unknown layer kind {kind!r}")
        return x

    def coef(self, c: dict, theta: dict, name: str) -> Any:
        if c["kind"] == "fixed":
            return float(c["value"])
        if c["kind"] == "sigmoid":
            return c["eps"] * _sigmoid(theta[("omega", "value")])
        if c["kind"] == "softplus":
            return _softplus(theta[("chi", "value")])
        raise ValueError(f"unknown coefficient kind {c['kind']!r} for {name}")

    def evaluate(self, u: np.ndarray, p: np.ndarray, t: float) -> np.ndarray:
        """``du`` for a Julia-shaped state ``u`` (``reverse(torch shape)``)."""
        theta = self.params(p)
        kind = self.spec["kind"]
        if kind == "first_order":
            return self.apply_ops(u, theta, t)
        sz = u.shape
        batch = sz[-1]
        fsz = sz[:-2]                 # the per-half feature size (…, C)
        F = int(np.prod(fsz))
        u2 = u.reshape((2 * F, batch), order="F")
        if kind == "sonode":
            x = u.reshape(fsz[:-1] + (2 * fsz[-1], batch), order="F")
            v = u2[F:2 * F, :]
            dv = self.apply_ops(x, theta, t).reshape((F, batch), order="F")
            return np.concatenate([v, dv], axis=0).reshape(sz, order="F")
        if kind == "heavyball":
            h = u2[0:F, :].reshape(fsz + (batch,), order="F")
            m = u2[F:2 * F, :]
            f = self.apply_ops(h, theta, t).reshape((F, batch), order="F")
            gamma = self.coef(self.spec["gamma"], theta, "gamma")
            xi = self.coef(self.spec["xi"], theta, "xi")
            sig = make_act(self.spec["sigma"])
            dh = m if sig is None else sig(m)
            dm = f - gamma * m - xi * u2[0:F, :]
            return np.concatenate([dh, dm], axis=0).reshape(sz, order="F")
        raise ValueError(f"unknown field kind {kind!r}")


def build(spec_json: str) -> EmulatedField:
    spec = json.loads(spec_json)
    if spec.get("format") != 2:
        raise ValueError(f"unsupported spec format {spec.get('format')!r}")
    return EmulatedField(spec)
