"""The chart's values.schema.json, checked as a draft-07 schema (what older Helm releases implement) without helm.

Helm's own validation of the same files, with both majors, is in tests/integration/test_chart.py.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "flyte-agent"
VALUES = REPO / "values"
BAD = REPO / "tests" / "data" / "chart" / "bad"
# The layerings the deploy tooling uses: base, then the environment, then sandbox inside the Flyte sandbox.
OVERLAYS = [(), ("prod",), ("dev",), ("prod", "sandbox"), ("dev", "sandbox")]


def merge(base: dict, override: dict) -> dict:
    """Helm's coalescing of values files: maps merge key by key, a null deletes, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def chart_values(*files: Path) -> dict:
    values = load(CHART / "values.yaml")
    for f in files:
        values = merge(values, load(f))
    return values


def expected_field(path: Path) -> str:
    """Each bad-values file starts with `# field: X`: a JSON pointer, or a key name the message must quote."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# field: "), f"{path.name}: first line must be '# field: ...'"
    return first[len("# field: "):].split()[0]


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads((CHART / "values.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


@pytest.mark.parametrize("layers", OVERLAYS, ids=lambda l: "+".join(("base",) + l))
def test_every_overlay_is_valid(validator, layers):
    values = chart_values(VALUES / "base.yaml", *(VALUES / f"{name}.yaml" for name in layers))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]
    assert errors == []


def test_chart_defaults_and_every_feature_are_valid(validator):
    assert list(validator.iter_errors(chart_values())) == []
    assert list(validator.iter_errors(chart_values(REPO / "tests" / "data" / "chart" / "all-features.yaml"))) == []


def test_sandbox_overlay_uses_sandbox_registry_and_small_resources():
    prod = chart_values(VALUES / "base.yaml", VALUES / "prod.yaml")
    sandbox = chart_values(VALUES / "base.yaml", VALUES / "prod.yaml", VALUES / "sandbox.yaml")
    assert sandbox["image"]["repository"].startswith("localhost:30000/")
    # Unique tags: IfNotPresent pulls each new build once and also works for side-loaded images.
    assert sandbox["image"]["pullPolicy"] == "IfNotPresent"
    assert sandbox["replicaCount"] == 1
    assert sandbox["resources"]["requests"]["memory"] != prod["resources"]["requests"]["memory"]


def test_bad_values_cover_the_acceptance_list():
    assert len(list(BAD.glob("*.yaml"))) >= 10


@pytest.mark.parametrize("bad", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_values_are_rejected_naming_the_field(validator, bad):
    errors = list(validator.iter_errors(chart_values(bad)))
    assert errors, f"{bad.name} was accepted"
    field = expected_field(bad)
    if field.startswith("/"):
        pointers = {"/" + "/".join(map(str, e.absolute_path)) for e in errors}
        assert field in pointers
    else:
        assert any(f"'{field}'" in e.message for e in errors), [e.message for e in errors]
