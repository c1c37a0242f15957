"""The generated point-cloud separation task, paper Sec. 5.1.

Two classes in the plane that no homeomorphism of R^2 can separate linearly: a disk of radius
0.5 (label -1) inside an annulus 0.85 < r < 1 (label +1). A NODE, whose flow preserves
topology, cannot send them to opposite sides of a line; (G)HBNODE lifts the dynamics to
(h, m) and can. Points are uniform in *area*, so the radius is drawn as the square root of a
uniform on ``[r_lo^2, r_hi^2]`` (drawing r itself uniformly would crowd the centre).
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_pointcloud"]


def make_pointcloud(
    n_inner: int = 40,
    n_outer: int = 80,
    seed: int = 0,
    *,
    inner_radius: float = 0.5,
    outer_radii: tuple[float, float] = (0.85, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in a disk (class -1) and a surrounding annulus (class +1).

    Args:
        n_inner: points in the disk ``r < inner_radius``.
        n_outer: points in the annulus ``outer_radii[0] < r < outer_radii[1]``.
        seed: seed of the :func:`numpy.random.default_rng` generator; equal seeds give equal sets.
        inner_radius, outer_radii: the class regions (paper: 0.5 and (0.85, 1.0)).

    Returns:
        ``(x, y)``: float32 ``(n_inner + n_outer, 2)`` coordinates, the disk points first, and
        float32 ``(n_inner + n_outer, 1)`` labels, -1 for the disk and +1 for the annulus (the
        targets of a tanh readout; class index = ``(y > 0)``).
    """
    if not 0 < inner_radius < outer_radii[0] < outer_radii[1]:
        raise ValueError(f"need 0 < inner_radius < outer_radii[0] < outer_radii[1], got {inner_radius}, {outer_radii}")
    rng = np.random.default_rng(seed)

    def ring(n: int, r_lo: float, r_hi: float) -> np.ndarray:
        r = np.sqrt(rng.uniform(r_lo**2, r_hi**2, n))
        theta = rng.uniform(0.0, 2.0 * np.pi, n)
        return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)

    x = np.concatenate([ring(n_inner, 0.0, inner_radius), ring(n_outer, *outer_radii)]).astype(np.float32)
    y = np.concatenate([-np.ones(n_inner), np.ones(n_outer)]).astype(np.float32)[:, None]
    return x, y
