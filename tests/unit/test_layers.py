"""Each part of tradeguard depends downward only (DESIGN.md, "Proposed layout"):

    cli -> chaos -> stack/responder/engine/instances -> ha/bus/store -> metrics/config

The check reads every ``import`` in the package, those inside functions included (a lazy
import is still a dependency), and also imports each part in a fresh interpreter to see what
it really loads. A new upward import fails here with the file that made it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import tradeguard

PACKAGE = Path(tradeguard.__file__).parent

# Lower tiers first. A part may import any part of a lower tier; parts of the same tier only
# as SIDEWAYS allows. Besides the parts DESIGN.md names: the foundation every part may use (the
# error types; the loopback address, redaction, secret and value files), process control (below
# the stack, the chaos runner and the instance supervisor), the fencing interface the engine
# takes and the coordinator provides, the rule checker beside the stack it checks, and below the
# CLI the composition modules (a replica built from the engine and the coordinator, the demo)
# and the Kubernetes export (built on the rule checker's paths and the responder's runbook links).
TIERS: tuple[frozenset[str], ...] = (
    frozenset({"tradeguard", "errors"}),
    frozenset({"net", "redact", "secret_files", "settings_files"}),
    frozenset({"metrics", "config", "fencing", "process"}),
    frozenset({"ha", "bus", "store"}),
    frozenset({"stack", "responder", "engine", "instances", "rulecheck", "remediation"}),
    frozenset({"chaos", "replica", "demo", "configbackup", "k8sexport"}),
    frozenset({"cli"}),
)

# Same-tier dependencies that are part of the design, each with its reason.
SIDEWAYS = {
    ("settings_files", "secret_files"): "a setting's value file is read as a secret file",
    ("ha", "bus"): "the coordinator's Redis lease and status use the bus's keys and errors",
    ("store", "bus"): "the store keeps the bus's records (results, trade state) in DuckDB",
    ("engine", "instances"): "the engine service runs the supervisor of the instances it uses",
    ("stack", "responder"): "the stack reads its responder through the one responder client",
    ("responder", "remediation"): "the responder decides remediation on the alerts it stores",
}
NEVER = {
    ("bus", "ha"): "the bus knows nothing of HA",
    ("engine", "ha"): "the engine takes the fencing interface, not the coordinator",
    ("ha", "engine"): "one composition module (replica) builds a replica from both",
    ("metrics", "config"): "metrics are the bottom layer",
}


def tier_of(part: str) -> int:
    for level, parts in enumerate(TIERS):
        if part in parts:
            return level
    raise AssertionError(f"{part!r} is in no tier: add it to TIERS in {__file__}")


def part_of(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def imported_modules(path: Path, module: str) -> set[str]:
    """Every tradeguard module ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return {m for m in found if m == "tradeguard" or m.startswith("tradeguard.")}


def dependencies() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the files that make that import."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts).removesuffix(".__init__")
        importer = part_of(module)
        for target in imported_modules(path, module):
            imported = part_of(target)
            if imported != importer:
                edges[(importer, imported)].append(str(path.relative_to(PACKAGE)))
    return edges


def test_every_part_depends_downward_only() -> None:
    wrong = []
    for (importer, imported), files in sorted(dependencies().items()):
        low, high = tier_of(imported), tier_of(importer)
        if (importer, imported) in NEVER:
            wrong.append(f"{importer} -> {imported} ({NEVER[(importer, imported)]}): {files}")
        elif low > high or (low == high and (importer, imported) not in SIDEWAYS):
            wrong.append(f"{importer} -> {imported} goes up or sideways: {files}")
    assert not wrong, "\n".join(wrong)


def test_every_part_is_placed() -> None:
    parts = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or any(p.glob("*.py"))
    }
    placed = set().union(*TIERS) - {"tradeguard"}
    assert parts <= placed, f"parts in no tier: {sorted(parts - placed)}"
    assert placed <= parts, f"TIERS names parts that are gone: {sorted(placed - parts)}"


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The parser under the check: a lazy import inside a function and a relative import
    both count (otherwise the check could pass on code that breaks the layering)."""
    source = tmp_path / "mod.py"
    source.write_text(
        "def late():\n    from tradeguard.ha import lease\n\nfrom ..metrics import family\n"
    )
    assert imported_modules(source, "tradeguard.bus.mod") == {
        "tradeguard.ha",
        "tradeguard.metrics",
    }


@pytest.mark.parametrize("part", ["metrics", "config", "bus", "store", "ha", "engine"])
def test_importing_a_part_loads_nothing_above_it(part: str) -> None:
    """What an import really loads, in a fresh interpreter (catches re-exports too)."""
    code = (
        "import json, sys, importlib; importlib.import_module('tradeguard.' + sys.argv[1]); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tradeguard.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, part], capture_output=True, text=True, check=True
    ).stdout
    loaded = {part_of(m) for m in json.loads(out)} - {part}
    above = {p for p in loaded if tier_of(p) >= tier_of(part) and (part, p) not in SIDEWAYS}
    assert not above, f"importing tradeguard.{part} loads {sorted(above)}"
