"""The generated point-cloud task: counts, regions, labels, seeding, uniformity in area."""
from __future__ import annotations

import numpy as np
import pytest

from pyhbnode.data import make_pointcloud


def test_default_cloud_matches_spec() -> None:
    x, y = make_pointcloud()
    assert x.shape == (120, 2) and y.shape == (120, 1) and x.dtype == y.dtype == np.float32
    r = np.linalg.norm(x, axis=1)
    inner, outer = y[:, 0] == -1, y[:, 0] == 1
    assert inner.sum() == 40 and outer.sum() == 80 and set(np.unique(y)) == {-1.0, 1.0}
    assert np.all(inner[:40]) and np.all(outer[40:])  # disk first, then annulus
    assert r[inner].max() < 0.5
    assert r[outer].min() > 0.85 and r[outer].max() < 1.0


def test_seeded() -> None:
    a, b, c = make_pointcloud(seed=3), make_pointcloud(seed=3), make_pointcloud(seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_uniform_in_area() -> None:
    x, _ = make_pointcloud(n_inner=20000, n_outer=20000, seed=0)
    r_in, r_out = np.linalg.norm(x[:20000], axis=1), np.linalg.norm(x[20000:], axis=1)
    # Half the disk's area lies inside r = 0.5 / sqrt(2); a uniform radius would put ~71% there.
    assert np.mean(r_in < 0.5 / np.sqrt(2)) == pytest.approx(0.5, abs=0.015)
    mid = np.sqrt((0.85**2 + 1.0**2) / 2)
    assert np.mean(r_out < mid) == pytest.approx(0.5, abs=0.015)
    angle = np.arctan2(x[:, 1], x[:, 0])
    assert np.histogram(angle, bins=8)[0].min() > 0.9 * len(x) / 8


def test_custom_regions_and_validation() -> None:
    x, y = make_pointcloud(5, 7, seed=1, inner_radius=0.2, outer_radii=(0.5, 0.6))
    r = np.linalg.norm(x, axis=1)
    assert len(x) == 12 and r[:5].max() < 0.2 and 0.5 < r[5:].min() and r[5:].max() < 0.6
    with pytest.raises(ValueError):
        make_pointcloud(inner_radius=0.9)
