"""DDP on 2 gloo CPU processes equals single-process training on the same global batches."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from pyhbnode import zoo
from pyhbnode.data import make_pointcloud
from pyhbnode.layers import set_solver_options
from pyhbnode.training import fit, launch_ddp, list_checkpoints
from pyhbnode.training.loaders import make_loader

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

# 120 points, global batch 40 (20 per rank): every rank's batches are equal in size, which
# the equality needs (DDP averages the ranks' mean gradients).
SETTINGS = dict(epochs=2, lr=0.01, batch_size=40, seed=7, metrics=["accuracy"], progress=False)


def _data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    x, y = make_pointcloud(seed=0)
    xv, yv = make_pointcloud(seed=1, n_inner=13, n_outer=20)  # 33: uneven split of the validation set
    return (torch.from_numpy(x), torch.from_numpy(y)), (torch.from_numpy(xv), torch.from_numpy(yv))


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1), nn.Tanh())
    torch.manual_seed(0)
    # Fixed-grid RK4: the solve does the same steps whatever the batch, so sharding it is exact.
    ode = zoo.build("pointcloud", "hbnode", tol=1e-3)
    set_solver_options(ode, backend="torchdiffeq", method="rk4")  # a fixed grid: see above
    torch.manual_seed(0)
    # The authors' point-cloud SONODE registers a scalar its forward never reads (model.dormant).
    dormant = zoo.build("pointcloud", "sonode", preset="authors", tol=1e-3)
    set_solver_options(dormant, backend="torchdiffeq", method="rk4")
    return {"mlp": mlp, "ode": ode, "dormant": dormant}


def _train_all(strategy: str | None, checkpoint_root: str | None) -> dict[str, tuple[dict, list, list]]:
    torch.set_num_threads(1)
    train, val = _data()
    out = {}
    for name, model in _models().items():
        ckpt = None if checkpoint_root is None else str(Path(checkpoint_root) / name)
        history = fit(model, train, val_data=val, strategy=strategy, checkpoint_dir=ckpt, **SETTINGS)
        out[name] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, history.batches, history.epochs)
    return out


def _ddp_worker(checkpoint_root: str) -> dict:
    return _train_all("ddp", checkpoint_root)


def test_ddp_on_two_gloo_processes_equals_single_process_training(tmp_path):
    distributed = launch_ddp(_ddp_worker, 2, args=(str(tmp_path),), timeout_s=120)
    n = torch.get_num_threads()
    try:
        single = _train_all(None, None)
    finally:
        torch.set_num_threads(n)
    for name in ("mlp", "ode", "dormant"):
        (w_ddp, b_ddp, e_ddp), (w_one, b_one, e_one) = distributed[name], single[name]
        for k in w_one:
            torch.testing.assert_close(w_ddp[k], w_one[k], rtol=1e-5, atol=1e-6, msg=f"{name} {k}")
        assert [r["size"] for r in b_ddp] == [r["size"] for r in b_one] == [40] * 6
        for key in ("loss", "accuracy", "nfe_forward", "nfe_backward"):
            assert [r[key] for r in b_ddp] == pytest.approx([r[key] for r in b_one], rel=1e-5, abs=1e-6), (name, key)
        for key in ("train_loss", "val_loss", "val_accuracy", "val_nfe_forward"):
            assert [e[key] for e in e_ddp] == pytest.approx([e[key] for e in e_one], rel=1e-5, abs=1e-6), (name, key)
    assert all(r["nfe_forward"] == 4 for r in distributed["ode"][1])  # one RK4 step per solve
    # rank 0 wrote the checkpoints: after each epoch, kept two
    assert [p.name for p in list_checkpoints(tmp_path / "ode")] == ["ckpt-000000006.pt", "ckpt-000000003.pt"]


def test_rank_batches_tile_the_single_process_batches():
    """The sampler claim behind the equality: rank r's k-th batch takes every 2nd index of the
    single process's k-th batch, so their union is that batch."""
    (x, y), _ = _data()
    data = (torch.arange(120), y)
    common = dict(shuffle=True, seed=7, where="training")
    single, _ = make_loader(data, batch_size=40, num_replicas=1, rank=0, **common)
    ranks = [make_loader(data, batch_size=40, num_replicas=2, rank=r, **common)[0] for r in (0, 1)]
    for epoch in (0, 1):
        for loader in (single, *ranks):
            loader.sampler.set_epoch(epoch)
        for whole, part0, part1 in zip(single, *ranks):
            assert sorted(whole[0].tolist()) == sorted(part0[0].tolist() + part1[0].tolist())
    with pytest.raises(ValueError, match="global batch size 41 does not divide among 2 ranks"):
        make_loader(data, batch_size=41, num_replicas=2, rank=0, **common)
