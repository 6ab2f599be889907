"""The dependency direction of DESIGN.md, enforced by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dnsrec"

# package part -> the project parts it may import (besides itself, errors and config types)
ALLOWED = {
    "models": set(),
    "data": set(),
    "evaluate": {"data"},
    "train": {"models", "evaluate", "data"},
    "nas": {"models", "train", "evaluate", "data"},
    "run_result": set(),
    "results": {"run_result"},
    "measure": {"train", "evaluate", "models"},
    "pipeline": {"data", "nas", "train", "evaluate", "models", "run_result", "measure"},
    "compose": set(),
    "launch": set(),
    "sweep": {"pipeline", "launch", "results", "run_result", "compose"},
    "recording": {"train", "results", "run_result"},
    "multirun": {"recording", "pipeline", "compose"},
    "export": {"models", "nas", "train", "data", "run_result"},
}
SHARED = {"errors", "config", "files", "__init__"}
# The config tree is shared (every part reads its own typed settings from it), so its modules may import
# only one another, except the run config, which sizes the search space from the data and `nas`.
CONFIG_ALLOWED = {"config/run.py": {"data", "nas"}}


def project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dnsrec."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("dnsrec."))
    return found


def test_dependency_direction() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        part = rel.parts[0].removesuffix(".py")
        if part == "config":
            allowed = CONFIG_ALLOWED.get(rel.as_posix(), set())
        elif part in ALLOWED:
            allowed = ALLOWED[part]
        else:
            continue
        for imported in project_imports(path) - {part} - SHARED:
            if imported not in allowed:
                violations.append(f"{path.relative_to(PACKAGE)} imports dnsrec.{imported}")
    assert not violations, violations


def test_nothing_imports_the_cli_and_result_needs_no_torch() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name != "cli.py":
            assert "cli" not in project_imports(path), path
    tree = ast.parse((PACKAGE / "run_result.py").read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in modules if m.split(".")[0] in ("torch", "numpy")], modules


def test_results_and_launch_never_import_torch() -> None:
    """They run on login nodes and in the sweep driver, where importing torch costs seconds and memory
    (and may not be installed with CUDA at all): DESIGN.md."""
    for part in ("results", "launch", "config"):
        for path in (PACKAGE / part).rglob("*.py"):
            if path.relative_to(PACKAGE).as_posix() in CONFIG_ALLOWED:
                continue  # the run config reads the data; only the driver-side settings must stay light
            tree = ast.parse(path.read_text())
            modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            assert not [m for m in modules if m.split(".")[0] in ("torch", "numpy")], path
