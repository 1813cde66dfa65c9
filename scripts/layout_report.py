"""The layout of the Python packages in figures (docs/architecture.md), for a checkout:

    python scripts/layout_report.py [DIR] [tree|lines|imports|all]

- `tree`: every module of gateway/, signaling/, sip_bridge/ with the first sentence of its
  docstring;
- `lines`: modules and lines per package (sub-packages apart);
- `imports`: for each of gateway/'s sub-packages, how many of its modules import from each
  other sub-package (or top-level module) of gateway/.

DIR defaults to the current directory, so an older commit can be measured from a
`git worktree` of it."""

from __future__ import annotations

import ast
import sys
from collections import Counter, defaultdict
from pathlib import Path

PACKAGES = ("gateway", "signaling", "sip_bridge")


def first_sentence(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except SyntaxError:
        return ""
    text = " ".join((doc or "").split())
    cut = text.find(". ")
    return (text[: cut + 1] if cut > 0 else text)[:110]


def tree(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)!s:45} {first_sentence(path)}"
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    ]


def lines(root: Path) -> list[str]:
    counted: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).parts
            key = "/".join(parts[:2]) if len(parts) > 2 else f"{parts[0]} (top level)"
            counted[key] += len(path.read_text(encoding="utf-8").splitlines())
            modules[key] += 1
    return [f"{key:32} {modules[key]:3} modules {counted[key]:6} lines" for key in sorted(counted)]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def imports(root: Path) -> list[str]:
    gateway = root / "gateway"
    subs = sorted(p.name for p in gateway.iterdir() if (p / "__init__.py").exists())
    table: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for sub in subs:
        for path in (gateway / sub).rglob("*.py"):
            others = set()
            for name in _imported(path):
                parts = name.split(".")
                if parts[0] == "gateway" and len(parts) > 1 and parts[1] != sub:
                    others.add(parts[1] if parts[1] in subs else f"{parts[1]} (module)")
            table[sub].update(others)
    return [
        f"gateway/{sub}: " + (", ".join(f"{o} {n}" for o, n in sorted(table[sub].items())) or "-")
        for sub in subs
    ]


def main(argv: list[str]) -> None:
    root = Path(argv[1]) if len(argv) > 1 else Path()
    what = argv[2] if len(argv) > 2 else "all"
    for name, report in (("tree", tree), ("lines", lines), ("imports", imports)):
        if what in (name, "all"):
            print("\n".join(report(root)))


if __name__ == "__main__":
    main(sys.argv)
