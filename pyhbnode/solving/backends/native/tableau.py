"""Butcher tableau of the Dormand–Prince 5(4) pair and its 4th-order dense output.

Coefficients from Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae",
and the continuous extension of Hairer, Nørsett & Wanner, *Solving ODEs I* (2nd ed.),
Sec. II.6 (the ``d`` coefficients of their DOPRI5 code).  Stored as exact fractions and
exposed as Python floats, so that a step combines stages with ``torch.add(..., alpha=h*a)``
and creates no coefficient tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction as Fr

__all__ = ["Tableau", "DOPRI5", "DOPRI5_SHAMPINE"]


@dataclass(frozen=True)
class Tableau:
    """An explicit embedded Runge–Kutta pair with FSAL and a dense output.

    Attributes:
        name: the method name (``"dopri5"``).
        order: order of the propagated (higher-order) solution; the embedded one is
            ``order - 1``, so the step-size exponents are ``1/order`` (written here only).
        c: nodes ``c_i`` (``len == stages``).
        a: the strictly lower-triangular rows ``a[i] = (a_i1, ..., a_i,i-1)``.
        b: weights of the propagated solution (``b[-1] == 0`` for FSAL: the last stage is
            evaluated at the new state and reused as the first stage of the next step).
        e: error weights ``b - b_hat`` (the difference to the embedded lower-order solution).
        d: weights of the dense-output correction ``r5 = h * sum(d_i k_i)`` (Hairer's DOPRI5).
    """

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    e: tuple[float, ...]
    d: tuple[float, ...]

    @property
    def stages(self) -> int:
        return len(self.c)


def _f(xs) -> tuple[float, ...]:
    return tuple(float(x) for x in xs)


_C = [Fr(0), Fr(1, 5), Fr(3, 10), Fr(4, 5), Fr(8, 9), Fr(1), Fr(1)]
_A = [
    [],
    [Fr(1, 5)],
    [Fr(3, 40), Fr(9, 40)],
    [Fr(44, 45), Fr(-56, 15), Fr(32, 9)],
    [Fr(19372, 6561), Fr(-25360, 2187), Fr(64448, 6561), Fr(-212, 729)],
    [Fr(9017, 3168), Fr(-355, 33), Fr(46732, 5247), Fr(49, 176), Fr(-5103, 18656)],
    [Fr(35, 384), Fr(0), Fr(500, 1113), Fr(125, 192), Fr(-2187, 6784), Fr(11, 84)],
]
_B = _A[6] + [Fr(0)]
_B_HAT = [Fr(5179, 57600), Fr(0), Fr(7571, 16695), Fr(393, 640), Fr(-92097, 339200), Fr(187, 2100), Fr(1, 40)]
_D = [
    Fr(-12715105075, 11282082432),
    Fr(0),
    Fr(87487479700, 32700410799),
    Fr(-10690763975, 1880347072),
    Fr(701980252875, 199316789632),
    Fr(-1453857185, 822651844),
    Fr(69997945, 29380423),
]

DOPRI5 = Tableau(
    name="dopri5",
    order=5,
    c=_f(_C),
    a=tuple(_f(row) for row in _A),
    b=_f(_B),
    e=_f(b - bh for b, bh in zip(_B, _B_HAT, strict=True)),
    d=_f(_D),
)

# Shampine's embedded 4th-order solution for the same 5th-order pair (the one MATLAB's ode45
# and torchdiffeq's ``dopri5`` use); only the error weights differ.
_B_HAT_SHAMPINE = [Fr(1951, 21600), Fr(0), Fr(22642, 50085), Fr(451, 720), Fr(-12231, 42400), Fr(649, 6300), Fr(1, 60)]

DOPRI5_SHAMPINE = replace(DOPRI5, e=_f(b - bh for b, bh in zip(_B, _B_HAT_SHAMPINE, strict=True)))
