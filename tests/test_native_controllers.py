"""Step-size controllers as objects: the Hairer/scipy controller reproduces scipy RK45's step
counts exactly; controllers are reusable templates and validate their settings."""
from __future__ import annotations

import pytest
import torch

from benchmarks.problems import PROBLEMS, VanDerPol
from pyhbnode import HairerController, IController, odeint, record

scipy_integrate = pytest.importorskip("scipy.integrate", reason="scipy is needed to compare with RK45")


ARENSTORF = PROBLEMS["arenstorf"]
VDP10 = PROBLEMS["vdp mu=10"]


@pytest.mark.parametrize("problem,tol", [(ARENSTORF, 1e-10), (ARENSTORF, 1e-6), (VDP10, 1e-8), (VDP10, 1e-4)],
                         ids=["arenstorf-1e-10", "arenstorf-1e-6", "vdp10-1e-8", "vdp10-1e-4"])
def test_hairer_controller_reproduces_scipy_rk45_counts(problem, tol):
    field, y0, T = problem

    def fun(t, y):
        return field(torch.tensor(t, dtype=torch.float64), torch.tensor(y)).numpy()

    ref = scipy_integrate.solve_ivp(fun, (0.0, T), y0, method="RK45", rtol=tol, atol=tol)
    accepted = len(ref.t) - 1
    attempts = (ref.nfev - 2) // 6  # f(y0), the initial-step probe, 6 per attempt
    sol = odeint(field, torch.tensor([y0], dtype=torch.float64), torch.tensor([0.0, T], dtype=torch.float64),
                 rtol=tol, atol=tol, controller="hairer")
    st = sol.stats
    assert (st.nfe_forward, st.accepted, st.rejected) == (ref.nfev, accepted, attempts - accepted)
    assert torch.allclose(sol.ys[-1, 0], torch.tensor(ref.y[:, -1]), rtol=0, atol=1e3 * tol)


def test_hairer_rejects_fewer_than_the_integral_controller_at_tight_tolerance():
    field, y0, T = ARENSTORF
    y = torch.tensor([y0], dtype=torch.float64)
    t = torch.tensor([0.0, T], dtype=torch.float64)
    i = odeint(field, y, t, rtol=1e-10, atol=1e-10, controller=IController()).stats
    h = odeint(field, y, t, rtol=1e-10, atol=1e-10, controller=HairerController()).stats
    assert h.rejected < i.rejected / 10


def test_a_controller_is_a_reusable_template():
    c = HairerController()
    field, y0, T = VDP10
    y = torch.tensor([y0], dtype=torch.float64)
    a = odeint(field, y, [0.0, T], rtol=1e-6, atol=1e-6, controller=c).stats
    b = odeint(field, y, [0.0, T], rtol=1e-6, atol=1e-6, controller=c).stats
    assert (a.nfe_forward, a.rejected) == (b.nfe_forward, b.rejected)
    assert c == HairerController() and c != IController()


@pytest.mark.parametrize("kwargs,word", [({"safety": 0.0}, "safety"), ({"ifactor": 0.5}, "ifactor"),
                                         ({"dfactor": 1.5}, "dfactor"), ({"embedded": "x"}, "embedded")])
def test_controller_settings_are_validated(kwargs, word):
    with pytest.raises(ValueError, match=word):
        HairerController(**kwargs)


def test_adjoints_and_controllers_reach_layers_zoo_train_and_compare():
    import argparse

    from pyhbnode import Checkpointed, ODEBlock, zoo
    from pyhbnode.cli.main import build_parser
    from pyhbnode.layers import set_solver_options
    from pyhbnode.cli.train import add_parser, resolve_config

    net = zoo.build("pointcloud", "hbnode", controller="hairer", adjoint="checkpointed:8")
    assert net.block.options.controller == HairerController() and net.block.options.adjoint == Checkpointed(8)
    set_solver_options(net, controller=IController(), adjoint="backsolve")
    assert net.block.options.controller == IController() and net.block.options.adjoint.name == "backsolve"
    block = ODEBlock(VanDerPol(1.0), 0.0, 1.0, controller="hairer", tol=1e-6)
    with record() as rec:
        assert block(torch.tensor([[2.0, 0.0]], dtype=torch.float64)).shape == (1, 2)
    assert rec.stats.rejected is not None

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    cfg = resolve_config(p.parse_args(["train", "--task", "pointcloud", "--model", "hbnode",
                                       "--adjoint", "checkpointed:8", "--set", "controller=hairer"]))
    assert (cfg.solver["adjoint"], cfg.solver["controller"]) == ("checkpointed:8", "hairer")
    args = build_parser().parse_args(["compare", "pointcloud", "--adjoint", "backsolve", "--controller", "hairer"])
    assert (args.adjoint, args.controller) == ("backsolve", "hairer")
