"""`sandbox.builtin: keep`: the routing keeps flytekit's async built-in types on the sandbox's built-in service.

Propeller polls the default deployment first and each entry of the deployments map after it, and the last answer
wins (measured with the real flytepropeller in tests/integration/test_propeller_executions.py), so a project service
routed as an entry takes sensor from the built-in unless a pin keeps it, which only works from Flyte 1.16.
"""
from __future__ import annotations

import pytest

from flyte_agents.flyte.plan import plan_routing
from flyte_agents.flyte.serving import kept_builtin, routing_check
from flyte_agents.flyte.versions import naming_for

from .test_flyte_config import AGENT_VERSIONS, CONNECTOR_VERSIONS, V, effective, sandbox_for, svc

DEMO = "flyte_agents_demo"
SERVED = {"demo-prod": {DEMO, "sensor", "webhook"}}  # a flytekit server advertises its built-ins next to DEMO


def keep_routing(version: str, services=None) -> list:
    """What deploy routes with builtin keep: the project's services as entries, plus the kept built-in if any."""
    services = services or [svc("demo-prod", (DEMO,))]
    builtin = kept_builtin(V(version), services, "flyte")
    return services + [builtin] if builtin else services


@pytest.mark.parametrize("version", CONNECTOR_VERSIONS)
def test_keep_on_1_16_pins_sensor_to_the_builtin_as_an_entry_and_never_webhook(version):
    naming = naming_for(V(version))
    plan = plan_routing(sandbox_for(version), V(version), keep_routing(version))
    view = effective(plan.after).plugins[naming.plugin]
    assert view.for_task_types == {DEMO: "demo-prod", "sensor": "flyteconnector"}
    entries = {d.id: d.endpoint for d in view.deployments}
    assert entries == {"demo-prod": "k8s://demo-prod.flyte:8000", "flyteconnector": view.default.endpoint}
    assert view.default.endpoint == "k8s://flyteconnector.flyte:8000"  # the default stays the built-in
    assert not [f for f in plan.findings if f.severity == "error"]


@pytest.mark.parametrize("version", CONNECTOR_VERSIONS)
def test_keep_plan_applied_is_up_to_date_and_verify_warns_only_about_webhook(version):
    config = sandbox_for(version)
    routed = keep_routing(version)
    plan = plan_routing(config, V(version), routed)
    again = plan_routing(config.with_file(plan.config_file()), V(version), routed)
    assert again.changes == () and again.after == plan.after
    findings = routing_check(plan.after, V(version), [s for s in routed if s.id in SERVED], SERVED)
    assert [(f.rule, f.severity) for f in findings] == [("builtin-type-taken", "warning")]
    assert "task type webhook" in findings[0].message
    assert "whichever of demo-prod, flyteconnector it polls last" in findings[0].message
    assert "ExecuteTaskSync" in findings[0].fix


@pytest.mark.parametrize("version", AGENT_VERSIONS)
def test_keep_before_1_16_pins_nothing_and_verify_says_why(version):
    naming = naming_for(V(version))
    assert kept_builtin(V(version), [svc("demo-prod", (DEMO,))], "flyte") is None  # a pin would lose to discovery
    routed = keep_routing(version)
    plan = plan_routing(sandbox_for(version), V(version), routed)
    view = effective(plan.after).plugins[naming.plugin]
    assert view.for_task_types == {DEMO: "demo-prod"}
    assert [d.id for d in view.deployments] == ["demo-prod"]
    findings = routing_check(plan.after, V(version), routed, SERVED)
    assert {f.rule for f in findings} == {"builtin-type-taken"} and {f.severity for f in findings} == {"warning"}
    assert sorted(f.message.split()[2] for f in findings) == ["sensor", "webhook"]
    assert all(f"sends {f.message.split()[2]} to demo-prod" in f.message for f in findings)
    assert all("before Flyte 1.16 a pin does not override discovery" in f.fix and "--builtin replace" in f.fix
               for f in findings)


@pytest.mark.parametrize("services", [
    [svc("demo-prod", (DEMO,), default=True)],  # replace: the project's default service serves the built-ins
    [svc("demo-prod", (DEMO, "sensor"))],       # a service that lists sensor owns it
    [],                                          # nothing routed: nothing takes sensor from the built-in
], ids=["replace", "sensor-listed", "nothing-routed"])
def test_no_builtin_entry_when_nothing_takes_sensor_from_it(services):
    assert kept_builtin(V("1.16.8"), services, "flyte") is None


def test_replace_has_no_builtin_warning():
    prod = svc("demo-prod", (DEMO,), default=True)
    plan = plan_routing(sandbox_for("1.16.8"), V("1.16.8"), [prod])
    assert routing_check(plan.after, V("1.16.8"), [prod], SERVED) == []
