"""The package layout is the architecture: each module's imports (top-level and lazy ones inside functions) stay
within what its layer may use.

* flyte/ (pure Flyte knowledge) and the shared top-level modules: the standard library, pyyaml, and flyte/ or
  the shared modules; no adapter, workflow, CLI or third-party client.
* adapters/: never flyte/, the workflows or the CLI.
* workflows/: never the CLI.
* nothing in the product imports the test infrastructure (hack, tests).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "toolkit" / "flyte_agents"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
SHARED = {"flyte_agents", "flyte_agents.errors", "flyte_agents.yamlio", "flyte_agents.kubeobjects",
          "flyte_agents.imageref"}
NEVER = ("hack", "tests")
# layer -> packages of the product it must not import
FORBIDDEN = {
    "flyte": ("flyte_agents.adapters", "flyte_agents.workflows", "flyte_agents.cli"),
    "shared": ("flyte_agents.flyte", "flyte_agents.adapters", "flyte_agents.workflows", "flyte_agents.cli"),
    "adapters": ("flyte_agents.flyte", "flyte_agents.workflows", "flyte_agents.cli"),
    "workflows": ("flyte_agents.cli",),
    "cli": (),
}
PURE = {"flyte", "shared"}  # layers that may import no third-party package but pyyaml
PURE_THIRD_PARTY = {"yaml"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FORBIDDEN else "shared"


def is_ours(module: str) -> bool:
    path = PACKAGE.parent / Path(*module.split("."))
    return module.startswith("flyte_agents.") and (path.with_suffix(".py").exists() or path.is_dir())


def imports(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `source`, relative ones resolved against `module`."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import mod` imports the module (or package) pkg.mod when it is one of ours
            found += [(node.lineno, f"{target}.{alias.name}" if is_ours(f"{target}.{alias.name}") else target)
                      for alias in node.names]
    return found


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    own = layer(module)
    found = []
    for line, target in imports(module, source, is_package):
        top = target.split(".")[0]
        if top in NEVER:
            found.append(f"line {line}: imports {target} (test infrastructure)")
        elif top == "flyte_agents":
            if any(target == f or target.startswith(f + ".") for f in FORBIDDEN[own]):
                found.append(f"line {line}: imports {target}, which the {own} layer must not use")
        elif own in PURE and top not in STDLIB and top not in PURE_THIRD_PARTY:
            found.append(f"line {line}: imports the third-party package {top}; the {own} layer is I/O-free")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_layer_has_modules():
    assert {layer(module_name(p)) for p in MODULES} == set(FORBIDDEN) | {"shared"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_imports_stay_within_its_layer(path: Path):
    module = module_name(path)
    assert violations(module, path.read_text(), path.name == "__init__.py") == [], f"{module} breaks the layering"


@pytest.mark.parametrize("module, source, expected", [
    ("flyte_agents.flyte.plan", "from ..adapters.kube import Kube\n", "imports flyte_agents.adapters.kube"),
    ("flyte_agents.flyte.plan", "def f():\n    from ..workflows import routing\n",
     "imports flyte_agents.workflows.routing"),
    ("flyte_agents.flyte.plan", "import kubernetes.client\n", "third-party package kubernetes"),
    ("flyte_agents.flyte.plan", "from rich.table import Table\n", "third-party package rich"),
    ("flyte_agents.kubeobjects", "from .flyte import versions\n", "imports flyte_agents.flyte.versions"),
    ("flyte_agents.adapters.kube", "from .. import workflows\n", "imports flyte_agents.workflows"),
    ("flyte_agents.adapters.registry", "from ..flyte.versions import FlyteVersion\n", "imports flyte_agents.flyte"),
    ("flyte_agents.workflows.deploy", "from ..cli import target\n", "imports flyte_agents.cli.target"),
    ("flyte_agents.cli.deploy", "from hack import standin\n", "imports hack (test infrastructure)"),
])
def test_the_check_catches_a_violation(module, source, expected):
    found = violations(module, source)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize("module, source", [
    ("flyte_agents.flyte.plan", "import json\nimport yaml\nfrom .. import yamlio\nfrom .lint import lint\n"),
    ("flyte_agents.adapters.kube", "import kubernetes\nfrom ..kubeobjects import ConfigMapState\n"),
    ("flyte_agents.workflows.deploy", "from ..adapters import grpc\nfrom ..flyte.plan import RoutingPlan\n"),
    ("flyte_agents.cli.deploy", "import click\nfrom ..workflows import deploy\n"),
])
def test_the_check_allows_what_a_layer_may_use(module, source):
    assert violations(module, source) == []
