"""diffrax (JAX) runners: the same models in plain JAX, started from the torch weights.

The whole training iteration (initial state, ``diffeqsolve`` with Dopri5 + PIDController
(its defaults: an I controller, safety 0.9, factors in [0.2, 10]) and the default
``RecursiveCheckpointAdjoint``, head, loss, gradient and an Adam update written out to
match ``torch.optim.Adam``) is one ``jax.jit`` program.  One XLA thread: the flags are set
before JAX is first imported (importing this module does it).

Covered: the point-cloud HBNODE/GHBNODE and the plane-vibration HBNODE ODE-RNN.  The
MNIST conv model is not ported (``supports`` says so).
"""
from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import diffrax  # noqa: E402

from .tasks import Task  # noqa: E402
from .torch_runners import Record  # noqa: E402

__all__ = ["Diffrax", "supports"]

_SUPPORTED = {("pointcloud", "hbnode"), ("pointcloud", "ghbnode"), ("plane_vibration", "hbnode")}


def supports(task: Task) -> bool:
    return (task.name, task.model_name) in _SUPPORTED


def _linear(P: dict, name: str, x):
    return x @ P[name + ".weight"].T + P[name + ".bias"]


def _mlp(P: dict, prefix: str, x, act, n_layers: int = 3):
    """An ``nn.Sequential`` of Linear/activation pairs (Linear at even indices)."""
    for i in range(n_layers):
        x = _linear(P, f"{prefix}.{2 * i}", x)
        if i < n_layers - 1:
            x = act(x)
    return x


def _heavy_ball(P: dict, prefix: str, y, act, generalised: bool):
    """HBNODE / GHBNODE (pyhbnode.fields.models, paper sign convention) on ``y (B, 2, n)``."""
    h, m = y[:, 0], y[:, 1]
    gamma = jax.nn.sigmoid(P[prefix + ".damping.omega"])  # eps = 1
    dm = _mlp(P, prefix + ".f", h, act) - gamma * m
    if generalised:
        dm = dm - jax.nn.softplus(P[prefix + ".restoring.chi"]) * h
        dh = jnp.tanh(m)
    else:
        dh = m
    return jnp.stack([dh, dm], axis=1)


def _solve(vf, y0, args, tol: float):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf), diffrax.Dopri5(), 0.0, 1.0, None, y0, args=args,
        stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol),
        adjoint=diffrax.RecursiveCheckpointAdjoint(),
    )
    return sol.ys[-1], sol.stats["num_steps"]


def _htanh(x):
    return jnp.clip(x, -5.0, 5.0)


def _pointcloud_loss(generalised: bool, tol: float):
    def loss(P, x, target):
        v = _mlp(P, "initial.net", x, _htanh)
        y0 = jnp.stack([x, v], axis=1)  # h(0) = x, m(0) = velocity(x)

        def vf(t, y, P):
            return _heavy_ball(P, "block.field", y, jax.nn.elu, generalised)

        y1, steps = _solve(vf, y0, P, tol)
        out = jnp.tanh(_linear(P, "head.0", y1[:, 0]))
        return jnp.mean((out - target) ** 2), steps

    return loss


def _plane_vibration_loss(tol: float):
    """The ODE-RNN with ``cell_first`` (read x[i], evolve over dt[i], read out)."""

    def loss(P, x, dt, target):
        batch = x.shape[1]
        width = P["rnn.readout.weight"].shape[1]

        def vf(s, y, args):
            P, d = args
            return d[:, None, None] * _heavy_ball(P, "rnn.field", y, jax.nn.relu, False)

        def stamp(y, inp):
            xi, di = inp
            y = _linear(P, "rnn.cell", jnp.concatenate([y.reshape(batch, -1), xi], axis=1)).reshape(y.shape)
            y, steps = _solve(vf, y, (P, di), tol)
            return y, (_linear(P, "rnn.readout", y[:, 0]), steps)

        y0 = jnp.zeros((batch, 2, width), x.dtype)
        _, (outs, steps) = jax.lax.scan(stamp, y0, (x, dt))
        return jnp.mean((outs - target) ** 2), jnp.sum(steps)

    return loss


def _adam(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
    """``torch.optim.Adam`` with its defaults, as (init, update)."""

    def init(P):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, P)
        return (zeros, zeros, jnp.zeros((), jnp.int32))

    def update(P, g, state):
        m, v, t = state
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1 = 1 - b1 ** t.astype(jnp.float32)
        c2 = 1 - b2 ** t.astype(jnp.float32)
        P = jax.tree_util.tree_map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), P, m, v)
        return P, (m, v, t)

    return init, update


class Diffrax:
    """diffrax 0.7.2: Dopri5 + PIDController, RecursiveCheckpointAdjoint, one jitted
    training iteration.  ``steps`` are diffrax's ``num_steps`` (attempts); diffrax does not
    count field evaluations (a DP5 attempt is 6 of them, FSAL)."""

    label = "diffrax (jax.jit)"

    def __init__(self, task: Task) -> None:
        if not supports(task):
            raise ValueError(f"no JAX port of {task.label}")
        self.task = task
        self.P = {k: jnp.asarray(v.detach().numpy()) for k, v in task.model.named_parameters()}
        if task.name == "pointcloud":
            loss = _pointcloud_loss(task.model_name == "ghbnode", task.tol)
        else:
            loss = _plane_vibration_loss(task.tol)
        init, update = _adam(task.lr)
        self.opt = init(self.P)
        grad = jax.value_and_grad(loss, has_aux=True)

        def train_step(P, opt, *batch):
            (value, steps), g = grad(P, *batch)
            P, opt = update(P, g, opt)
            return P, opt, value, steps

        self._step = jax.jit(train_step)

    def step(self, i: int) -> Record:
        inputs, target = self.task.batch(i)
        batch = [jnp.asarray(np.asarray(a)) for a in (*inputs, target)]
        self.P, self.opt, value, steps = self._step(self.P, self.opt, *batch)
        value = float(jax.block_until_ready(value))
        return Record(value, None, None, float(steps))
