"""The dependency direction of DESIGN.md, enforced by reading every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
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
    "compose": {"data"},  # the Hydra group `dataset` is generated from the dataset presets
    "launch": set(),
    "worker": {"pipeline", "run_result"},
    "sweep": {"worker", "pipeline", "launch", "results", "run_result", "compose"},
    "recording": {"train", "results", "run_result"},
    "multirun": {"recording", "pipeline", "compose"},
    "reproduce": {"worker", "pipeline", "launch", "results", "run_result", "compose", "data", "evaluate"},
    "export": {"models", "nas", "train", "data", "run_result"},
    "remeasure": {"pipeline", "export", "measure", "models", "train", "evaluate", "data", "run_result"},
}
SHARED = {"errors", "config", "files", "__init__"}
# Single modules a part may import beyond its parts: the torch-free values that cross a boundary. `results`
# reads a run's Architecture as the value itself, and a search's commitment by the search's own rule (both
# checked torch-free below), not through string keys or a second copy of the rule.
TORCH_FREE_NAS = ("architecture", "commitment")
MODULES_ALLOWED = {"results": {f"dnsrec.nas.{name}" for name in TORCH_FREE_NAS}}
# The config tree is shared (every part reads its own typed settings from it), so its modules may import
# only one another, except the run config, which sizes the search space from the data and `nas`.
CONFIG_ALLOWED = {"config/run.py": {"data", "nas"}}


def project_modules(path: Path) -> set[str]:
    """Every `dnsrec.*` module `path` imports (anywhere in the file, function bodies included)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dnsrec."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dnsrec."))
    return found


def project_imports(path: Path) -> set[str]:
    return {module.split(".")[1] for module in project_modules(path)}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return modules + [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]


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
        for module in project_modules(path) - MODULES_ALLOWED.get(part, set()):
            imported = module.split(".")[1]
            if imported not in allowed | {part} | SHARED:
                violations.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not violations, violations


def test_nothing_imports_the_cli_and_result_needs_no_torch() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name != "cli.py":
            assert "cli" not in project_imports(path), path
    modules = imported_modules(PACKAGE / "run_result.py")
    assert not [m for m in modules if m.split(".")[0] in ("torch", "numpy")], modules


def test_results_and_launch_never_import_torch() -> None:
    """They run on login nodes and in the sweep driver, where importing torch costs seconds and memory
    (and may not be installed with CUDA at all): DESIGN.md."""
    for part in ("results", "launch", "config"):
        for path in (PACKAGE / part).rglob("*.py"):
            if path.relative_to(PACKAGE).as_posix() in CONFIG_ALLOWED:
                continue  # the run config reads the data; only the driver-side settings must stay light
            modules = imported_modules(path)
            assert not [m for m in modules if m.split(".")[0] in ("torch", "numpy")], path


def test_architecture_is_a_torch_free_value() -> None:
    """`Architecture` crosses from search to retraining and into the database: `dnsrec.results` imports it
    (and the commitment rule), so they import no torch, numpy or model code (the compact model it describes
    is `nas.derive`'s), and of the project only errors and config types, which are torch-free too."""
    for name in TORCH_FREE_NAS:
        path = PACKAGE / "nas" / f"{name}.py"
        modules = imported_modules(path)
        assert not [m for m in modules if m.split(".")[0] in ("torch", "numpy")], modules
        assert project_imports(path) <= {"errors", "config"}, project_imports(path)
    assert not [m for m in imported_modules(PACKAGE / "config" / "__init__.py") if m.split(".")[0] == "torch"]


def test_results_import_loads_no_torch() -> None:
    """The same, at run time: importing the results store (and through it Architecture) loads no torch."""
    code = "import sys, dnsrec.results.store, dnsrec.nas.commitment; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
