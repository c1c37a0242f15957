"""``pyhbnode report RUN_DIR...``: one Markdown (and optionally HTML) page over reproduce runs.

Per run: the paper's figure and claim, the verdict with its reasons, the momentum family's
claims judged on the same results (a row each: paper, claim, verdict, reasons), the
(G)HBNODE/NODE NFE ratios, a table (model, parameters, mean forward and backward NFE, time per epoch, final
metric — or the experiment's own columns) and the figures, followed by what ran it (command,
scale, preset, seed, machine, threads, versions, wall time).  Where one experiment ran at one
scale under both zoo presets (``paper`` and ``authors``), a closing section sets the two side by
side: the verdicts and each model's NFE and metric, flagging where they disagree.
"""

from __future__ import annotations

import html as _html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import zoo
from . import registry
from .common import MODEL_NAMES, Assessment, fmt, load_config, nfe_verdict

__all__ = ["RunSection", "find_runs", "assess_run", "build_report", "render_markdown", "render_html"]


@dataclass
class RunSection:
    run_dir: Path
    experiment: registry.Experiment
    config: dict
    assessment: Assessment


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories among ``paths``: each path itself if its ``config.json`` names an
    experiment, else the run directories below it (two levels deep).  Ordered as the
    registry lists the experiments.  A path holding no run is a ``ValueError`` naming it."""
    found: list[Path] = []
    empty: list[str] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ValueError(f"{p} does not exist")
        before = len(found)
        if load_config(p).get("experiment"):
            found.append(p)
        else:
            for c in sorted(list(p.glob("*/config.json")) + list(p.glob("*/*/config.json"))):
                if load_config(c.parent).get("experiment") and not any(c.parent.is_relative_to(f) for f in found):
                    found.append(c.parent)
        if len(found) == before:
            empty.append(str(p))
    if empty:
        raise ValueError(
            f"no reproduce runs found in {', '.join(empty)} (a run directory holds a config.json "
            "naming its experiment, here or up to two levels below); point report at run directories"
        )
    order = {n: i for i, n in enumerate(registry.names())}
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda d: (order.get(_name(d), 99), str(d)))


def _name(run_dir: Path) -> str:
    return str(load_config(run_dir).get("experiment", "")).replace("_", "-")


def assess_run(run_dir: str | Path) -> RunSection:
    run = Path(run_dir)
    config = load_config(run)
    if not config.get("experiment"):
        raise ValueError(f"{run} has no config.json naming an experiment; is it a `pyhbnode reproduce` run?")
    exp = registry.get(config["experiment"])
    return RunSection(run, exp, config, exp.assess(run))


VERDICT_MARK = {
    "held": "✅ held",
    "partly held": "🟡 partly held",
    "not held": "❌ not held",
    "not assessed": "— not assessed",
}


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def preset_of(cfg: dict) -> str:
    """The zoo preset a run used (runs from before presets existed say ``-``)."""
    return str(cfg.get("preset", "-"))


def _wall_time(cfg: dict) -> str:
    """The run's wall time over all its invocations (``wall_seconds`` alone in older runs)."""
    wall = cfg.get("wall_seconds_total", cfg.get("wall_seconds"))
    return f"{wall:.0f} s" if isinstance(wall, (int, float)) else "-"


def _run_facts(cfg: dict) -> list[tuple[str, str]]:
    skipped = cfg.get("skipped_models") or {}
    facts = [("models skipped", "; ".join(f"{m}: {why}" for m, why in skipped.items()))] if skipped else []
    return facts + [
        ("command", f"`{cfg.get('command', '')}`"),
        ("scale", str(cfg.get("scale", "-"))),
        ("preset", preset_of(cfg)),
        ("seed", str(cfg.get("seed", "-"))),
        ("backend", str(cfg.get("backend", "-"))),
        ("device", str(cfg.get("device", "-"))),
        ("machine", str(cfg.get("machine", "-"))),
        ("torch threads", str(cfg.get("torch_threads", "-"))),
        (
            "versions",
            f"pyhbnode {cfg.get('pyhbnode', '?')}, torch {cfg.get('torch', '?')}, python {cfg.get('python', '?')}",
        ),
        ("wall time", _wall_time(cfg)),
        ("date", str(cfg.get("date", "-"))),
    ]


def _table_md(a: Assessment) -> list[str]:
    head = "| " + " | ".join(h for _, h in a.columns) + " |"
    sep = "|" + "|".join("---" for _ in a.columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(k)) for k, _ in a.columns) + " |" for r in a.rows]
    return [head, sep, *body]


def _claims_md(a: Assessment) -> list[str]:
    """The momentum family's claims on this run: a table, then each verdict's reasons."""
    if not a.claims:
        return []
    lines = [
        "",
        "**Momentum-family claims** (judged on this run's results):",
        "",
        "| paper | claim | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {c.paper} | {c.claim} | {VERDICT_MARK.get(c.verdict, c.verdict)} |" for c in a.claims]
    lines.append("")
    for c in a.claims:
        lines += [f"- {c.claim}: " + "; ".join(c.reasons)]
    return lines


def _claims_summary_md(sections: Sequence[RunSection]) -> list[str]:
    rows = [(s, c) for s in sections for c in s.assessment.claims]
    if not rows:
        return []
    lines = [
        "",
        "Momentum-family claims over these runs:",
        "",
        "| experiment | paper | claim | verdict |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| [{_label(s)}](#{_anchor(s)}) | {c.paper} | {c.claim} | {VERDICT_MARK.get(c.verdict, c.verdict)} |"
        for s, c in rows
    ]
    return lines


def render_markdown(sections: Sequence[RunSection], out: Path, title: str = "pyhbnode: reproducing the paper") -> str:
    base = out.parent
    lines = [
        f"# {title}",
        "",
        "Each section is one `pyhbnode reproduce` run: the paper's claim, what we measured and whether the "
        "claim held on this run. Verdicts on quick runs (subsampled data, a few iterations) say what the "
        "pipeline measured at that scale, not what the full experiment would show.",
        "",
        "| experiment | paper | scale | preset | wall time | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for s in sections:
        lines.append(
            f"| [{_label(s)}](#{_anchor(s)}) | {s.experiment.figure} | {s.config.get('scale', '-')} | "
            f"{preset_of(s.config)} | "
            f"{_wall_time(s.config)} | "
            f"{VERDICT_MARK.get(s.assessment.verdict, s.assessment.verdict)} |"
        )
    lines += _claims_summary_md(sections)
    for s in sections:
        e, a = s.experiment, s.assessment
        where = "" if s.run_dir.name == e.name else f", run `{s.run_dir.name}`"
        lines += [
            "",
            f"## {e.figure}: {e.title} (`{e.name}`{where})",
            f'<a id="{_anchor(s)}"></a>',
            "",
            f"**Paper's claim.** {e.claim}",
            "",
            f"**Verdict: {VERDICT_MARK.get(a.verdict, a.verdict)}.**",
            "",
        ]
        lines += [f"- {r}" for r in a.reasons]
        lines += _claims_md(a)
        if a.ratios:
            lines += ["", "Ratios: " + "; ".join(f"{k} = {fmt(v, 3)}" for k, v in a.ratios.items())]
        lines += ["", *_table_md(a), ""]
        for fig in a.figures:
            lines.append(f"![{fig.stem}]({_rel(fig, base)})")
        lines += ["", "<details><summary>run details</summary>", ""]
        lines += [f"- {k}: {v}" for k, v in _run_facts(s.config)]
        lines += [f"- run directory: `{_rel(s.run_dir, base)}`"]
        if e.notes:
            lines += [f"- note: {e.notes}"]
        lines += ["", "</details>"]
    lines += preset_comparison(sections)
    return "\n".join(lines) + "\n"


# Columns compared across presets, when a run's table has them.
_COMPARED = (
    ("nfe_forward_mean", "fwd NFE"),
    ("nfe_backward_mean", "bwd NFE"),
    ("final_val_accuracy", "test accuracy"),
    ("final_val_loss", "test loss"),
    ("final_loss", "final loss"),
    ("seeds_zero_loss", "seeds separated"),
)


def _row_label(row: dict) -> str:
    """A row's model, with its tolerance where an experiment has one row per model and tolerance."""
    tol = row.get("tol")
    return f"{row.get('model')} @ {tol:g}" if isinstance(tol, (int, float)) else str(row.get("model"))


def _same_settings_key(s: RunSection) -> tuple[str, str, str]:
    """Runs are compared across presets only at one experiment, scale and set of settings (an
    override such as ``--set max_batches=200`` makes another run)."""
    settings = json.dumps(s.config.get("experiment_settings", {}), sort_keys=True, default=str)
    return s.experiment.name, str(s.config.get("scale", "-")), settings


def _borrowed_baselines(paper: RunSection, authors: RunSection) -> list[str]:
    """An authors' run that trained only the models its preset changes (``--models ghbnode``)
    has no baselines of its own; where the paper run's missing models are the same modules under
    both presets and the rows are one per model, its NFE claim is judged against those."""
    task = paper.config.get("settings", {}).get("task")
    have = {r.get("model") for r in authors.assessment.rows}
    rows = paper.assessment.rows
    models = [r.get("model") for r in rows]
    missing = [m for m in models if m is not None and m not in have]
    if not missing or task is None or len(set(models)) != len(models):
        return []
    if not all(zoo.same_in_both_presets(task, m) for m in missing):
        return []
    merged = list(authors.assessment.rows) + [r for r in rows if r.get("model") in missing]
    verdict, reasons, ratios = nfe_verdict(merged)
    names = ", ".join(MODEL_NAMES.get(m, m) for m in missing)
    return [
        f"With the paper run's {names} (the same modules, seed and batches under both presets), the "
        f"authors' NFE claim is {VERDICT_MARK.get(verdict, verdict)}: "
        + "; ".join(reasons)
        + (" (" + "; ".join(f"{k} = {fmt(v, 3)}" for k, v in ratios.items()) + ")" if ratios else "")
        + ".",
        "",
    ]


def preset_comparison(sections: Sequence[RunSection]) -> list[str]:
    """Markdown lines setting the ``paper`` and ``authors`` runs of one experiment, scale and set
    of settings side by side (nothing when no experiment ran under both)."""
    groups: dict[tuple[str, str, str], dict[str, RunSection]] = {}
    for s in sections:
        groups.setdefault(_same_settings_key(s), {})[preset_of(s.config)] = s
    pairs = [(key, g["paper"], g["authors"]) for key, g in groups.items() if "paper" in g and "authors" in g]
    if not pairs:
        return []
    lines = [
        "",
        "## Paper preset vs authors' preset",
        "",
        "Runs of one experiment at one scale under both zoo presets (`paper`: Appendix E as written; "
        "`authors`: the settings of the authors' code). A model's numbers are flagged **differ** when the "
        "verdict differs or a number moves by more than 10%.",
        "",
    ]
    for (name, scale, _), paper, authors in pairs:
        flag = "same verdict" if paper.assessment.verdict == authors.assessment.verdict else "**verdicts differ**"
        lines += [
            f"### {name} ({scale})",
            "",
            f"Verdict: paper preset {VERDICT_MARK.get(paper.assessment.verdict)}, authors' preset "
            f"{VERDICT_MARK.get(authors.assessment.verdict)} ({flag}).",
            "",
        ]
        lines += _borrowed_baselines(paper, authors)
        by = {p: {_row_label(r): r for r in s.assessment.rows} for p, s in (("paper", paper), ("authors", authors))}
        keys = [(k, h) for k, h in _COMPARED if any(k in r for r in paper.assessment.rows)]
        lines += [
            "| model | " + " | ".join(f"{h} (paper / authors)" for _, h in keys) + " | |",
            "|---|" + "---|" * (len(keys) + 1),
        ]
        for label in dict.fromkeys(list(by["paper"]) + list(by["authors"])):
            a, b = by["paper"].get(label, {}), by["authors"].get(label, {})
            cells, differ = [], False
            for k, _ in keys:
                x, y = a.get(k), b.get(k)
                cells.append(f"{fmt(x)} / {fmt(y)}")
                if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                    differ |= abs(x - y) > 0.1 * max(abs(x), abs(y), 1e-12)
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {'**differ**' if differ else ''} |")
        lines.append("")
    return lines


def _label(s: RunSection) -> str:
    """The experiment's name, with the run directory's when they differ (several runs of one experiment)."""
    return s.experiment.name if s.run_dir.name == s.experiment.name else f"{s.experiment.name} ({s.run_dir.name})"


def _anchor(s: RunSection) -> str:
    name = s.experiment.name if s.run_dir.name == s.experiment.name else f"{s.experiment.name}-{s.run_dir.name}"
    return name.replace(".", "-")


def render_html(sections: Sequence[RunSection], out: Path, title: str = "pyhbnode: reproducing the paper") -> str:
    esc = _html.escape
    base = out.parent
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:.5em 0}"
        ".held{color:#070}.partly{color:#a60}.not{color:#a00}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<table><tr><th>experiment</th><th>paper</th><th>scale</th><th>preset</th>"
        "<th>wall time</th><th>verdict</th></tr>",
    ]
    for s in sections:
        parts.append(
            f"<tr><td><a href='#{_anchor(s)}'>{esc(_label(s))}</a></td>"
            f"<td>{esc(s.experiment.figure)}</td>"
            f"<td>{esc(str(s.config.get('scale', '-')))}</td><td>{esc(preset_of(s.config))}</td>"
            f"<td>{_wall_time(s.config)}</td>"
            f"<td>{esc(VERDICT_MARK.get(s.assessment.verdict, s.assessment.verdict))}</td></tr>"
        )
    parts.append("</table>")
    for s in sections:
        e, a = s.experiment, s.assessment
        parts += [
            f"<h2 id='{_anchor(s)}'>{esc(e.figure)}: {esc(e.title)} (<code>{esc(e.name)}</code>)</h2>",
            f"<p><b>Paper's claim.</b> {esc(e.claim)}</p>",
            f"<p><b>Verdict: {esc(VERDICT_MARK.get(a.verdict, a.verdict))}.</b></p><ul>",
        ]
        parts += [f"<li>{esc(r)}</li>" for r in a.reasons]
        parts.append("</ul>")
        if a.claims:
            parts.append(
                "<p><b>Momentum-family claims</b> (judged on this run's results):</p>"
                "<table><tr><th>paper</th><th>claim</th><th>verdict</th><th>reasons</th></tr>"
            )
            parts += [
                f"<tr><td>{esc(c.paper)}</td><td>{esc(c.claim)}</td>"
                f"<td>{esc(VERDICT_MARK.get(c.verdict, c.verdict))}</td><td>{esc('; '.join(c.reasons))}</td></tr>"
                for c in a.claims
            ]
            parts.append("</table>")
        if a.ratios:
            ratios = "; ".join(f"{esc(k)} = {esc(fmt(v, 3))}" for k, v in a.ratios.items())
            parts.append(f"<p>Ratios: {ratios}</p>")
        parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for _, h in a.columns) + "</tr>")
        for r in a.rows:
            parts.append("<tr>" + "".join(f"<td>{esc(fmt(r.get(k)))}</td>" for k, _ in a.columns) + "</tr>")
        parts.append("</table>")
        parts += [f"<img src='{esc(_rel(f, base))}' alt='{esc(f.stem)}'>" for f in a.figures]
        parts.append("<details><summary>run details</summary><ul>")
        parts += [f"<li>{esc(k)}: {esc(v.strip('`'))}</li>" for k, v in _run_facts(s.config)]
        parts.append("</ul></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(
    paths: Iterable[str | Path],
    out: str | Path = "report.md",
    *,
    html: bool = False,
    title: str = "pyhbnode: reproducing the paper",
) -> list[Path]:
    """Write the report for the runs found under ``paths``; returns the files written."""
    runs = find_runs(paths)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = [assess_run(r) for r in runs]
    out.write_text(render_markdown(sections, out, title))
    written = [out]
    if html:
        page = out.with_suffix(".html")
        page.write_text(render_html(sections, page, title))
        written.append(page)
    return written
