"""``compile="auto"``: whether a run's solves step compiled, decided once, up front.

The rule (:func:`decide_compile`), a pure function of what is known before the first step:

* a single solve (``odeint``, a layer called outside ``fit``: ``iterations=1``) never
  compiles: a cold compile costs tens of seconds, a solve milliseconds;
* a run of ``iterations`` training steps compiles when all of these hold:
  the device is the CPU (no GPU measurement exists yet: ``compile=True`` forces CUDA graphs);
  the state has at most :data:`~.dopri5.SMALL` elements (larger states are bandwidth-bound,
  and their programs take minutes to build); some solving layer uses the native backend with
  a gradient mode that has compiled programs (not ``Direct``); and ``iterations`` reaches
  :data:`COMPILE_PAYS_AFTER`.

What the rule does not read: how many solves the process made before (a seed's numbers do
not depend on the runs before it) and whether inductor's on-disk cache is warm (compiled and
eager steps round float32 differently in the last bits, so a warm cache must make a run
faster, never different).  ``fit`` resolves ``"auto"`` with this function once, at its
start, and sets the result on the model's layers: the whole run steps one way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...adjoints import Direct
from ...options import SolverOptions
from .dopri5 import SMALL

__all__ = ["decide_compile", "COMPILE_PAYS_AFTER"]

# The training iterations from which compiling pays on the CPU: a cold compile of the
# point-cloud HBNODE costs 25 s on an idle 2-core machine and saves ~13 ms per iteration
# (eager 16.8 ms, compiled 3.6 ms; benchmarks/peers/results/targets-idle.txt and
# compile-variants.txt): break-even ~1,900, later on a loaded machine.
COMPILE_PAYS_AFTER = 2_000


def decide_compile(
    model: nn.Module, example: int | torch.Tensor | Sequence[torch.Tensor], device: torch.device | str, iterations: int
) -> bool:
    """Whether a run of ``iterations`` solves (training steps) of ``model`` should compile
    (the rule is in this module's docstring).

    Args:
        model: the model, or a vector field solved with ``odeint``; its solving layers are
            the modules with a :class:`~pyhbnode.solving.options.SolverOptions` ``options``
            attribute (a bare field counts as solved by the native backend).
        example: the ODE state's element count ``batch · prod(state)``; or, for a model with
            solving layers, example inputs ``(batch, ...)``: one forward pass without
            gradients then reads the state size off the layers' fields (run only when the
            other conditions already hold); for a bare field, the state ``y0`` itself.
        device: where the run solves.
        iterations: how many training steps (forward + backward) the run makes; ``1`` for a
            single solve.

    Returns:
        ``True`` to compile from the first step, ``False`` to step eagerly throughout.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int (training steps of the run), got {iterations!r}")
    if torch.device(device).type != "cpu" or iterations < COMPILE_PAYS_AFTER:
        return False
    layers = [(m, o) for m in model.modules() if isinstance(o := getattr(m, "options", None), SolverOptions)]
    native = [m for m, o in layers if o.backend == "native" and not isinstance(o.adjoint, Direct)]
    if layers and not native:
        return False
    if isinstance(example, int):
        numel = example
    elif not layers:
        numel = example.numel() if isinstance(example, torch.Tensor) else sum(x.numel() for x in example)
    else:
        numel = _state_numel(model, native, example)
    return 0 < numel <= SMALL


def _state_numel(model: nn.Module, layers: list[nn.Module], example) -> int:
    """The largest state a field of ``layers`` is called on during one forward pass of
    ``model`` on ``example``, without gradients (0 when no field is an ``nn.Module``)."""
    inputs = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    fields = [f for m in layers if isinstance(f := getattr(m, "field", None), nn.Module)]
    seen = [0]

    def note(module: nn.Module, args: tuple) -> None:
        if len(args) == 2 and isinstance(args[1], torch.Tensor):
            seen[0] = max(seen[0], args[1].numel())

    hooks = [f.register_forward_pre_hook(note) for f in fields]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return seen[0]
