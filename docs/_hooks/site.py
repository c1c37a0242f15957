"""MkDocs hooks (built into MkDocs, no plugin): publish the experiments' figures without
copying them into docs/, and refuse to build when a public name has no API entry.

* The measured runs stay in ``experiments/runs/``; the PNG figures that a page or
  ``experiments/RESULTS.md`` shows from there are added to the site under ``runs/``.
* ``experiments/RESULTS.md`` is the reproduction's record and stays where its runs are; the
  page ``reproducing.md`` includes it with a ``--8<--`` line, expanded here rather than by
  pymdownx.snippets so that its links can be adjusted: the PNG figures it shows are added to
  the site under ``runs/`` (so its relative links resolve unchanged), and links to run files
  that are not figures (CSV, the generated reports) are turned into repository paths.
* Every name in ``pyhbnode.__all__`` must appear as a ``::: identifier`` in ``docs/api/``;
  a missing one is a warning, which ``--strict`` turns into a failed build.
"""
from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.pyhbnode")

RESULTS = "experiments/RESULTS.md"
INCLUDE = f'--8<-- "{RESULTS}"'
LINK = re.compile(r"\[([^\]]*)\]\((runs/[^)#\s]*)(#[^)]*)?\)")


def _root(config) -> Path:
    return Path(config["config_file_path"]).parent


def _figures(root: Path, docs: Path) -> list[str]:
    # the figures RESULTS.md shows, and those the pages show from the runs (`runs/...png`)
    text = (root / RESULTS).read_text(encoding="utf-8")
    shown = {m.group(2) for m in LINK.finditer(text) if m.group(2).endswith(".png")}
    for page in docs.rglob("*.md"):
        shown |= set(re.findall(r"\]\((?:\.\./)*(runs/[^)#\s]*\.png)\)", page.read_text(encoding="utf-8")))
    return sorted(shown)


def on_files(files, config):
    root = _root(config)
    for rel in _figures(root, Path(config["docs_dir"])):
        path = root / "experiments" / rel
        if not path.is_file():
            log.warning("%s shows %s, which does not exist", RESULTS, rel)
            continue
        files.append(File.generated(config, rel, abs_src_path=str(path)))
    return files


def _link(match: re.Match) -> str:
    text, target, _ = match.groups()
    if target.endswith(".png"):
        return match.group(0)
    path = f"`experiments/{target}`"
    return path if text.strip("`") == target else f"{text} ({path} in the repository)"


def on_page_markdown(markdown, page, config, files):
    if INCLUDE not in markdown:
        return markdown
    text = (_root(config) / RESULTS).read_text(encoding="utf-8")
    return markdown.replace(INCLUDE, LINK.sub(_link, text))


def _public_names(root: Path) -> list[str]:
    # read, not imported: the build needs neither torch nor the package's import to run
    tree = ast.parse((root / "pyhbnode" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ValueError("pyhbnode/__init__.py defines no __all__")


def on_pre_build(config):
    api = _root(config) / config["docs_dir"] / "api"
    documented = set()
    for page in api.glob("*.md"):
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith(":::"):
                documented.add(line.split()[1].rsplit(".", 1)[-1])
    for name in _public_names(_root(config)):
        if name not in documented:
            log.warning("pyhbnode.%s is public (in __all__) but has no entry in docs/api/", name)
