"""`flyte-agents config`: render, diff and lint propeller's agent routing offline; apply or remove it in a cluster.

Services come from `--service` specs and/or a `--services` YAML file:

    --service id=my-agent,endpoint=k8s://my-agent.flyte:8000,task-types=my_task+other_task[,sync][,default]
              [,timeout=10s][,insecure=false]

    services:                       # --services FILE
      - id: my-agent
        endpoint: k8s://my-agent.flyte:8000
        taskTypes: [my_task]
        sync: false                 # optional
        default: false              # optional: becomes defaultAgent / defaultConnector
        timeout: 10s                # optional: defaultTimeout
        insecure: true              # optional
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

import click

from .. import userfiles
from ..errors import LintFailed, UserError
from . import params

if TYPE_CHECKING:  # the Flyte core is imported by the commands that run, not by --help
    from ..flyte import propeller_target as pt
    from ..flyte.lint import LintFinding
    from ..flyte.plan import RoutingPlan
    from ..flyte.services import AgentService
    from ..flyte.versions import FlyteVersion

OFFLINE_OUTPUTS = ("yaml", "json", "diff", "values")
SERVICE_FIELDS = {"id": "id", "endpoint": "endpoint", "tasktypes": "task_types", "task_types": "task_types",
                  "task-types": "task_types", "sync": "sync", "default": "default", "timeout": "timeout",
                  "insecure": "insecure"}


# ------------------------------------------------------------------------------------------------ services input

def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise UserError(f"{what} is {value!r}, not a boolean: use true or false")


def service_from_mapping(raw: Any, where: str) -> AgentService:
    from ..flyte.services import AgentService
    from ..flyte.versions import DEFAULT_TIMEOUT

    if not isinstance(raw, dict):
        raise UserError(f"{where} is not a map: give id, endpoint and taskTypes")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        name = SERVICE_FIELDS.get(str(key).lower())
        if name is None:
            raise UserError(f"{where}: unknown field {key!r}: use id, endpoint, taskTypes, sync, default, timeout, "
                            "insecure")
        fields[name] = value
    for required in ("id", "endpoint"):
        if not fields.get(required):
            raise UserError(f"{where}: field {required} is missing: every service needs an id and an endpoint")
    types = fields.get("task_types") or []
    if isinstance(types, str):
        types = [t for t in types.split("+")]
    if not isinstance(types, list):
        raise UserError(f"{where}: taskTypes must be a list of task type names")
    label = f"{where} {fields['id']}"
    return AgentService(
        id=str(fields["id"]), endpoint=str(fields["endpoint"]), task_types=tuple(types),
        sync=_bool(fields.get("sync", False), f"{label}: sync"),
        default=_bool(fields.get("default", False), f"{label}: default"),
        insecure=_bool(fields.get("insecure", True), f"{label}: insecure"),
        timeout=str(fields.get("timeout") or DEFAULT_TIMEOUT))


def parse_service_spec(spec: str) -> AgentService:
    fields: dict[str, Any] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if key.strip().lower() in ("sync", "default", "insecure") and not sep:
            value = "true"
        elif not sep:
            raise UserError(f"--service {spec!r}: {part!r} is not key=value: write e.g. "
                            "id=my-agent,endpoint=k8s://my-agent.flyte:8000,task-types=my_task")
        fields[key.strip()] = value.strip()
    return service_from_mapping(fields, "--service")


def load_services(specs: Sequence[str], services_file: str | None, required: bool = True) -> list[AgentService]:
    from ..flyte.services import validate_services

    services = [parse_service_spec(s) for s in specs]
    if services_file:
        doc = userfiles.load_yaml(services_file, "--services")
        items = doc.get("services") if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise UserError(f"--services {services_file}: expected a list under `services:`")
        services += [service_from_mapping(item, f"{services_file} services[{i}]") for i, item in enumerate(items)]
    if required and not services:
        raise UserError("no services given: pass --service id=…,endpoint=…,task-types=… or --services FILE")
    validate_services(services)
    return services


def _check_output(output: str, allowed: Sequence[str]) -> str:
    if output not in allowed:
        raise UserError(f"--output {output!r} is unknown: use {', '.join(allowed)}")
    return output


def _echo_findings(findings: Sequence[LintFinding]) -> None:
    for finding in findings:
        click.echo(finding.line(), err=True)


# ------------------------------------------------------------------------------------------------ offline

def _offline(sources: Sequence[str], version: FlyteVersion | None, flavor_text: str | None
             ) -> tuple[pt.OfflineInput, FlyteVersion]:
    from ..flyte import propeller_target as pt

    if not sources:
        raise UserError("--from is required: pass propeller's ConfigMap manifests, config files or a values file")
    flavor = pt.parse_flavor(flavor_text)
    texts = [userfiles.read_text(path, "--from") for path in sources]
    offline = pt.load_offline(list(sources), texts, version, flavor)
    if version is None:
        found = pt.detect_version(offline.config, None, [])
        if found is None:
            raise UserError("the --from files do not say the Flyte version (no co-pilot image): pass --flyte-version")
        version = found[0]
    return offline, version


def _render(sources, flyte_version, flavor_text, service_specs, services_file, output) -> None:
    from ..flyte.plan import plan_routing

    output = _check_output(output, OFFLINE_OUTPUTS)
    services = load_services(service_specs, services_file)
    offline, version = _offline(sources, flyte_version, flavor_text)
    plan = plan_routing(offline.config, version, services)
    if output == "json":
        click.echo(json.dumps(plan.to_dict(), indent=2, default=str))
        return
    text = _render_text(plan, offline, output)  # before the findings: it may still refuse the input
    _echo_findings(plan.findings)
    click.echo(text, nl=False)


def _render_text(plan: RoutingPlan, offline: pt.OfflineInput, output: str) -> str:
    from ..flyte import propeller_target as pt
    from ..flyte.render import render_yaml

    no_change = "# no change: propeller already routes these services\n"
    if output == "diff":
        return plan.effective_diff() or no_change
    if output == "values":
        if offline.flavor is None:
            raise UserError("cannot tell flyte-binary from flyte-core from the --from files: pass --flavor")
        return render_yaml(pt.values_overlay(plan, offline.flavor, offline.values)) or no_change
    if offline.config_maps:
        name = pt.write_config_map_name(offline.flavor or pt.Flavor.SANDBOX, offline.config_maps)
        return render_yaml(pt.updated_config_map(offline.config_maps, name, plan))
    return f"# {plan.file_name}: load it after every other config file\n" + (plan.text or no_change)


FROM = click.option("--from", "sources", multiple=True, metavar="FILE",
                    help="ConfigMap manifest, propeller config YAML, or flyte-binary/flyte-core values (repeatable).")
VERSION = click.option("--flyte-version", type=params.VERSION, default="auto", show_default=True,
                       help="Flyte version (1.13 … 1.16.x); auto reads it from the co-pilot image or the cluster.")
FLAVOR = click.option("--flavor", "flavor_text", default="auto", show_default=True,
                      help="auto, sandbox, flyte-binary or flyte-core.")
SERVICE = click.option("--service", "service_specs", multiple=True, metavar="SPEC",
                       help="id=…,endpoint=…,task-types=a+b[,sync][,default][,timeout=10s] (repeatable).")
SERVICES = click.option("--services", "services_file", metavar="FILE", help="YAML file with a services: list.")


def offline_options(command):
    """The inputs every offline subcommand (render, diff, lint) takes."""
    for option in (SERVICES, SERVICE, FLAVOR, VERSION, FROM):
        command = option(command)
    return command


@click.group("config")
def config() -> None:
    """Propeller's agent (connector) routing: render, diff, lint, apply, remove."""


@config.command("render")
@offline_options
@click.option("--output", "-o", default="yaml", show_default=True, help="yaml, json, diff or values.")
def render(sources, flyte_version, flavor_text, service_specs, services_file, output) -> None:
    """Print the new config (offline, from --from files): the file to add, a ConfigMap, or a values overlay."""
    _render(sources, flyte_version, flavor_text, service_specs, services_file, output)


@config.command("diff")
@offline_options
@click.option("--output", "-o", default="diff", show_default=True, help="diff, yaml, json or values.")
def diff(sources, flyte_version, flavor_text, service_specs, services_file, output) -> None:
    """Print a unified diff of propeller's effective routing config (offline, from --from files)."""
    _render(sources, flyte_version, flavor_text, service_specs, services_file, output)


FAIL_ON = {"error": ("error",), "warning": ("error", "warning"), "never": ()}


@config.command("lint")
@offline_options
@click.option("--output", "-o", default="text", show_default=True, help="text or json.")
@click.option("--fail-on", default="error", show_default=True,
              help="warning, error or never: the lowest severity that makes the exit code 17.")
def lint_command(sources, flyte_version, flavor_text, service_specs, services_file, output, fail_on) -> None:
    """Report the known pitfalls of a propeller config (offline), each with its fix.

    Exit codes: 0 no finding at or above --fail-on, 17 some (listed on stdout, one error line on stderr),
    2 bad input.
    """
    output = _check_output(output, ("text", "json"))
    if fail_on not in FAIL_ON:
        raise UserError(f"--fail-on {fail_on!r} is unknown: use {', '.join(FAIL_ON)}")
    services = load_services(service_specs, services_file, required=False)
    offline, version = _offline(sources, flyte_version, flavor_text)
    from ..flyte.lint import lint

    findings = lint(offline.config, version, services)
    if output == "json":
        click.echo(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for finding in findings:
            click.echo(finding.line())
        click.echo(f"{len(findings)} finding(s) for Flyte {version}")
    failing = [f for f in findings if f.severity in FAIL_ON[fail_on]]
    if failing:
        rules = ", ".join(dict.fromkeys(f.rule for f in failing))
        raise LintFailed(f"{len(failing)} finding(s) at or above --fail-on {fail_on} ({rules}): fix them, or pass "
                         "--fail-on never to only report")


# ------------------------------------------------------------------------------------------------ cluster

CLUSTER = [
    click.option("--context", help="kube context (default: the kubeconfig's current context)."),
    click.option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."),
    click.option("--namespace", "-n", type=params.NAMESPACE, default="flyte", show_default=True,
                 help="Namespace of propeller."),
    FLAVOR,
    click.option("--dry-run", is_flag=True,
                 help="Print the plan; the API server validates the write, nothing persists."),
    click.option("--output", "-o", default="text", show_default=True, help="text or json."),
    click.option("--timeout", type=params.SECONDS, default=300.0, show_default=True,
                 help="Seconds to wait for propeller's rollout."),
]


def _cluster_options(fn):
    for option in reversed(CLUSTER):
        fn = option(fn)
    return fn


def _print_result(result, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    if result.plan is not None:
        _echo_findings(result.plan.findings)
    target = result.target
    prefix = "[dry run] " if result.dry_run else ""
    where = f"ConfigMap {target.namespace}/{target.write_config_map} key {target.file_name}"
    click.echo(f"{prefix}{target.flavor.value} (Flyte {result.version or '?'}, from {result.version_source})")
    for change in result.plan.changes if result.plan else ():
        click.echo(f"  - {change}")
    verb = {("apply", False): "wrote", ("apply", True): "would write", ("remove", False): "restored",
            ("remove", True): "would restore"}[(result.action, result.dry_run)]
    click.echo(f"{prefix}{verb + ' ' + where if result.written else 'no write: ' + where + ' is up to date'}")
    click.echo(f"{prefix}{result.rollout}")
    for note in result.notes:
        click.echo(f"note: {note}")


def _connect(kubeconfig, context):
    from ..adapters.kube import Kube

    return Kube.connect(kubeconfig, context)


@config.command("apply")
@_cluster_options
@VERSION
@SERVICE
@SERVICES
def apply(context, kubeconfig, namespace, flavor_text, dry_run, output, timeout, flyte_version, service_specs,
          services_file) -> None:
    """Write the routing into propeller's config in a cluster, restart propeller if needed, wait for it."""
    from ..flyte import propeller_target as pt
    from ..workflows.routing import apply_routing

    output = _check_output(output, ("text", "json"))
    services = load_services(service_specs, services_file)
    flavor = pt.parse_flavor(flavor_text)
    kube = _connect(kubeconfig, context)
    try:
        result = apply_routing(kube, services, namespace=namespace, flavor=flavor, version=flyte_version,
                               dry_run=dry_run, timeout=timeout)
    finally:
        kube.close()
    _print_result(result, output)


@config.command("remove")
@_cluster_options
def remove(context, kubeconfig, namespace, flavor_text, dry_run, output, timeout) -> None:
    """Restore propeller's config exactly as it was before `apply`, restarting propeller if that changes it."""
    from ..flyte import propeller_target as pt
    from ..workflows.routing import remove_routing

    output = _check_output(output, ("text", "json"))
    flavor = pt.parse_flavor(flavor_text)
    kube = _connect(kubeconfig, context)
    try:
        result = remove_routing(kube, namespace=namespace, flavor=flavor, dry_run=dry_run, timeout=timeout)
    finally:
        kube.close()
    _print_result(result, output)
