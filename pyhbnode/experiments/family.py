"""The momentum family's claims (Nguyen et al., NeurIPS 2022; Cho et al., 2022) as rows of an experiment's report,
each with a verdict computed from the run's results in the report's vocabulary (held / partly
held / not held).

The heavy-ball paper's claim stays the run's verdict; these rows sit beside it.  A claim whose
models the run did not train is left out (runs from before the family, ``--models paper``).

* NesterovNODE paper (Nguyen et al., NeurIPS 2022): on MNIST/CIFAR-10 fewer forward and
  backward NFEs than NODE and than the heavy-ball counterpart, at equal or better accuracy
  (:func:`nesterov_nfe`); the point cloud separated (:func:`nesterov_separation`); a Walker2D
  test MSE as low as the heavy-ball paper's models' (:func:`nesterov_mse`); GNesterovNODE
  bounded on Silverbox at initialisation (:func:`gnesterov_bounded`).
* AdamNODE paper (Cho et al., 2022): a lower training loss than (G)HBNODE at comparable NFE
  (:func:`adam_loss`; MNIST, CIFAR-10, point cloud).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .. import zoo
from .common import (
    HB_MODELS,
    HELD,
    MODEL_NAMES,
    NOT_ASSESSED,
    NOT_HELD,
    PARTLY,
    Claim,
    combine_verdicts,
    fmt,
    metric_verdict,
    nfe_verdict,
    number,
)

__all__ = [
    "NESTEROV_PAPER",
    "ADAM_PAPER",
    "NESTEROV",
    "COUNTERPART",
    "COMPARABLE_NFE",
    "nesterov_nfe",
    "nesterov_separation",
    "nesterov_mse",
    "gnesterov_bounded",
    "adam_loss",
]

NESTEROV_PAPER = "Nguyen et al., NeurIPS 2022 (NesterovNODE)"
ADAM_PAPER = "Cho et al., 2022 (AdamNODE)"
NESTEROV = ("nesterovnode", "gnesterovnode")
# Whom each Nesterov model is measured against: NODE and the heavy-ball model it generalises,
# as the paper's tables pair them (GNesterovNODE has GHBNODE's bounded activations).
COUNTERPART = {"nesterovnode": ("node", "hbnode"), "gnesterovnode": ("node", "ghbnode")}
# "Comparable NFE": AdamNODE's mean forward + backward NFE at most this multiple of each (G)HBNODE's.
COMPARABLE_NFE = 1.25


def _ran(rows: Sequence[Mapping], models: Sequence[str]) -> list[str]:
    present = {r.get("model") for r in rows}
    return [m for m in models if m in present]


def _share(hits: int, of: int) -> str:
    """held if all ``of`` checks hit, not held if none did, partly held otherwise."""
    return HELD if hits == of else NOT_HELD if hits == 0 else PARTLY


def nesterov_nfe(
    rows: Sequence[Mapping], *, metric: str, label: str, higher_is_better: bool, abs_tol: float = 0.0
) -> list[Claim]:
    """MNIST/CIFAR-10: each (G)NesterovNODE needs fewer forward and fewer backward NFEs than
    each of its :data:`COUNTERPART` (NODE and (G)HBNODE), with ``metric`` as good as theirs
    within ``abs_tol``.  NFE: held if every comparison is won, not held if none is; the verdict
    combines it with the metric's as the heavy-ball claim's does."""
    ran = _ran(rows, NESTEROV)
    if not ran:
        return []
    nfe, acc, reasons = [], [], []
    for m in ran:
        v, why, _ = nfe_verdict(rows, subjects=(m,), baselines=COUNTERPART[m])
        nfe.append(v)
        reasons += why
        v, why = metric_verdict(
            rows,
            metric,
            higher_is_better=higher_is_better,
            label=label,
            abs_tol=abs_tol,
            subjects=(m,),
            baselines=COUNTERPART[m],
        )
        acc.append(v)
        reasons += why
    nfe_v, acc_v = combine_verdicts(*nfe), combine_verdicts(*acc)
    return [
        Claim(
            NESTEROV_PAPER,
            "(G)NesterovNODE needs fewer forward and backward NFEs than NODE and than "
            f"(G)HBNODE at equal or better {label}",
            combine_verdicts(nfe_v, acc_v),
            (f"NFE: {nfe_v}; {label}: {acc_v}", *reasons),
        )
    ]


def nesterov_separation(rows: Sequence[Mapping], zero_loss: float) -> list[Claim]:
    """Point cloud: each (G)NesterovNODE drives the training loss below ``zero_loss`` on every
    seed (rows carry ``seeds`` and ``seeds_zero_loss``).  Held if every run model does on every
    seed, not held if none does on any, partly held otherwise."""
    ran = _ran(rows, NESTEROV)
    if not ran:
        return []
    by = {r["model"]: r for r in rows}
    hits = sum(int(by[m].get("seeds_zero_loss") or 0) for m in ran)
    total = sum(int(by[m].get("seeds") or 0) for m in ran)
    reasons = tuple(
        f"{MODEL_NAMES[m]} reached loss < {zero_loss:g} on {by[m].get('seeds_zero_loss')} of "
        f"{by[m].get('seeds')} seeds (final loss {by[m].get('final_loss')})"
        for m in ran
    )
    verdict = _share(hits, total) if total else NOT_ASSESSED
    return [
        Claim(
            NESTEROV_PAPER,
            f"(G)NesterovNODE separates the point cloud (training loss < {zero_loss:g} on every seed)",
            verdict,
            reasons,
        )
    ]


def nesterov_mse(rows: Sequence[Mapping], *, rel_tol: float) -> list[Claim]:
    """Walker2D: each (G)NesterovNODE-RNN's test MSE is as low as the best of the heavy-ball
    paper's five, within ``rel_tol`` of it."""
    ran = _ran(rows, NESTEROV)
    if not ran:
        return []
    verdict, reasons = metric_verdict(
        rows,
        "final_val_loss",
        higher_is_better=False,
        label="test MSE",
        rel_tol=rel_tol,
        subjects=ran,
        baselines=zoo.PAPER_MODELS,
    )
    return [
        Claim(
            NESTEROV_PAPER,
            "(G)NesterovNODE-RNN reaches a test MSE as low as the best of NODE, ANODE, "
            f"SONODE, HBNODE and GHBNODE (within {rel_tol:.0%})",
            verdict,
            tuple(reasons),
        )
    ]


def gnesterov_bounded(rows: Sequence[Mapping], bound_factor: float) -> list[Claim]:
    """Silverbox at initialisation: GNesterovNODE's ‖h(t)‖ stays within ``bound_factor`` ×
    max |V2| on every seed (rows carry ``seeds`` and ``seeds_unbounded``).  Held on every seed,
    not held on none, partly held otherwise."""
    by = {r["model"]: r for r in rows}
    if "gnesterovnode" not in by:
        return []
    g = by["gnesterovnode"]
    seeds, unbounded = int(g.get("seeds") or 0), int(g.get("seeds_unbounded") or 0)
    reasons = [
        f"GNesterovNODE: {unbounded} of {seeds} seeds exceed {bound_factor:g} × max |V2|; "
        f"max ‖h(t)‖ {fmt(g.get('max_norm'))}"
    ]
    if "nesterovnode" in by:
        n = by["nesterovnode"]
        reasons.append(
            f"NesterovNODE (no bounded activations): {n.get('seeds_unbounded')} of {n.get('seeds')} "
            f"seeds unbounded, max ‖h(t)‖ {fmt(n.get('max_norm'))}"
        )
    verdict = _share(seeds - unbounded, seeds) if seeds else NOT_ASSESSED
    return [
        Claim(
            NESTEROV_PAPER, "GNesterovNODE keeps ‖h(t)‖ bounded at initialisation on Silverbox", verdict, tuple(reasons)
        )
    ]


def adam_loss(rows: Sequence[Mapping], loss: str = "final_loss") -> list[Claim]:
    """AdamNODE reaches a lower training loss (``loss``: the mean over the last tenth of the
    iterations) than each of HBNODE and GHBNODE, at comparable NFE (mean forward + backward NFE
    at most :data:`COMPARABLE_NFE` × theirs).  Each part: held if AdamNODE wins against both,
    not held if against neither.  The loss is the claim, the NFE its qualifier: a loss not lower
    than either is not held whatever the NFE; otherwise the verdict combines the two."""
    by = {r["model"]: r for r in rows}
    adam = by.get("adamnode")
    if adam is None:
        return []
    claim = (
        f"AdamNODE reaches a lower training loss than HBNODE and GHBNODE at comparable NFE "
        f"(at most {COMPARABLE_NFE:g}× theirs)"
    )
    theirs = {m: val for m in HB_MODELS if m in by and (val := number(by[m], loss)) is not None}
    hbs = list(theirs)
    mine = number(adam, loss)
    if mine is None or not hbs or adam.get("status", "ok") != "ok":
        return [Claim(ADAM_PAPER, claim, NOT_ASSESSED, ("needs AdamNODE's and a (G)HBNODE's training loss",))]
    lower = [m for m in hbs if mine < theirs[m]]
    reasons = [
        f"AdamNODE training loss {mine:.4g} vs "
        + ", ".join(f"{MODEL_NAMES[m]} {theirs[m]:.4g} ({'lower' if m in lower else 'not lower'})" for m in hbs)
    ]
    total = _total_nfe(adam)
    comparable = [m for m in hbs if total is not None and (nfe := _total_nfe(by[m])) and total <= COMPARABLE_NFE * nfe]
    nfe_v = _share(len(comparable), len(hbs)) if total is not None else NOT_ASSESSED
    reasons.append(
        f"AdamNODE forward + backward NFE {fmt(total)} vs "
        + ", ".join(
            f"{MODEL_NAMES[m]} {fmt(_total_nfe(by[m]))} ({'comparable' if m in comparable else 'more'})" for m in hbs
        )
    )
    loss_v = _share(len(lower), len(hbs))
    return [
        Claim(
            ADAM_PAPER,
            claim,
            NOT_HELD if loss_v == NOT_HELD else combine_verdicts(loss_v, nfe_v),
            (f"training loss: {loss_v}; NFE: {nfe_v}", *reasons),
        )
    ]


def _total_nfe(row: Mapping) -> float | None:
    fwd, bwd = number(row, "nfe_forward_mean"), number(row, "nfe_backward_mean")
    return None if fwd is None or bwd is None else fwd + bwd
