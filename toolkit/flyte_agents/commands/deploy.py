"""`flyte-agents deploy | verify | status | undeploy`: the project's agent services in the sandbox or any cluster.

Progress goes to stderr; stdout carries only the result (a table, or JSON with --output json).
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import deploy as dp
from .. import flyte_config as fc
from .. import image_tags as tags
from .. import propeller_target as pt
from .. import sandbox as sb
from ..errors import UserError
from ..helm import Helm
from ..kube import kubeconfig_path
from ..project import BUILTIN_MODES, load
from .build import Reporter, _stdout

OUTPUTS = ("table", "json")


def target_options(fn: Callable) -> Callable:
    options = [
        click.option("--project", "-p", "project_file", type=click.Path(path_type=Path), default=None,
                     help="Project file (default: ./flyte-agents.yaml)."),
        click.option("--sandbox", is_flag=True, help="Target the running Flyte sandbox (flytectl demo start)."),
        click.option("--env", "environment", help="Only the project's services of this environment (prod, dev, …)."),
        click.option("--service", "service_ids", multiple=True, help="Only this service (repeatable)."),
        click.option("--kubeconfig", type=click.Path(), help="Kubeconfig (default: $KUBECONFIG, ~/.kube/config; "
                     "with --sandbox also ~/.flyte/sandbox/kubeconfig)."),
        click.option("--context", help="Kube context (default: the current one; --sandbox: flyte-sandbox)."),
        click.option("--namespace", "-n", help="Namespace of the releases (default: the project's namespace)."),
        click.option("--propeller-namespace", default="flyte", show_default=True,
                     help="Namespace of Flyte's propeller."),
        click.option("--flavor", default="auto", show_default=True,
                     help="auto, sandbox, flyte-binary or flyte-core."),
        click.option("--flyte-version", help="Flyte version, when the cluster does not tell (e.g. 1.16)."),
        click.option("--registry", help="Registry images are pushed to and pulled from (sandbox: localhost:30000)."),
        click.option("--helm", "helm_binary", help="helm 3 or 4 binary (default: $FA_HELM, then helm on PATH)."),
        click.option("--builtin", type=click.Choice(BUILTIN_MODES), help="Sandbox: keep the built-in "
                     "flyteagent/flyteconnector as propeller's default, or replace it with the project's default "
                     "service (default: the project's sandbox.builtin)."),
        click.option("--output", "-o", default="table", show_default=True, help="table or json (stdout)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


class Session:
    """The parsed command line and the connections it implies, opened once per command."""

    def __init__(self, kw: dict[str, Any]) -> None:
        self.kw = kw
        if kw["output"] not in OUTPUTS:
            raise UserError(f"--output {kw['output']!r} is unknown: use table or json")
        self.err = Console(stderr=True, soft_wrap=True)
        self.project = load(kw["project_file"])
        self.services = self.project.select(kw["environment"], kw["service_ids"])
        if kw["sandbox"] and kw["context"]:
            raise UserError("--sandbox and --context exclude each other: the sandbox's context is flyte-sandbox")
        if not kw["sandbox"] and kw["builtin"]:
            raise UserError("--builtin applies to the sandbox only: add --sandbox or drop --builtin")
        registry = kw["registry"] or (None if kw["sandbox"] else self.project.registry)
        if registry:
            registry = tags.validate_registry(registry)
        if kw["sandbox"]:
            kubeconfig, context, namespace = sb.sandbox_kubeconfig(kw["kubeconfig"]), sb.CONTEXT, sb.NAMESPACE
        else:
            kubeconfig, context = str(kubeconfig_path(kw["kubeconfig"])), kw["context"]
            namespace = kw["namespace"] or self.project.namespace
        # helm's own start-up and its lookups of the project's releases run while the Kubernetes client loads.
        helm = _in_background(_open_helm, kw["helm_binary"], kubeconfig, context,
                              [s.id for s in self.project.services], namespace)
        if kw["sandbox"]:
            self.cluster, self.kube = sb.detect_sandbox(kubeconfig, registry)
        else:
            version = fc.FlyteVersion.parse(kw["flyte_version"]) if kw["flyte_version"] else None
            self.cluster, self.kube = sb.detect_cluster(
                kw["kubeconfig"], kw["context"], kw["namespace"] or self.project.namespace,
                kw["propeller_namespace"], pt.parse_flavor(kw["flavor"]), version, registry)
        if kw["namespace"] and kw["sandbox"] and kw["namespace"] != self.cluster.namespace:
            raise UserError(f"--namespace {kw['namespace']}: sandbox releases go to {self.cluster.namespace}")
        self.helm: Helm = helm.result()
        self.progress("target: " + ", ".join(f"{k} {v}" for k, v in (
            ("context", self.cluster.context), ("Flyte", self.cluster.version), ("plugin", self.cluster.naming.plugin),
            ("propeller", f"{self.cluster.target.namespace}/{self.cluster.target.deployment}"),
            ("registry", self.cluster.registry or "-"), ("helm", self.helm.version))))

    @property
    def json(self) -> bool:
        return self.kw["output"] == "json"

    def progress(self, message: str) -> None:
        self.err.print(f"[dim]•[/] {escape(message)}")

    def options(self, **extra: Any) -> dp.Options:
        return dp.Options(builtin=self.kw["builtin"], **extra)

    def docker(self) -> Any:
        from ..docker_adapter import DockerEngine

        return DockerEngine.connect()


def _open_helm(binary: str | None, kubeconfig: str, context: str | None, releases: list[str],
               namespace: str) -> Helm:
    helm = Helm(binary, kubeconfig, context)
    helm.prefetch(releases, namespace)
    return helm


def _in_background(fn: Callable, *args: Any) -> Future:
    """fn(*args) in a daemon thread (so an error exit never waits for it); the Future holds its result or error."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread by result()
            future.set_exception(err)

    threading.Thread(target=run, name=fn.__name__, daemon=True).start()
    return future


def _builtin(session: Session) -> str:
    return session.kw["builtin"] or session.project.builtin


def _echo_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# ------------------------------------------------------------------------------------------------ deploy

@click.command("deploy")
@target_options
@click.option("--dry-run", is_flag=True, help="Print the plan (images, releases with values diff, routing, "
              "restart) and change nothing.")
@click.option("--network", "network_mode", envvar="FLYTE_AGENTS_BUILD_NETWORK",
              help="Network for image build RUN steps, e.g. host.")
@click.option("--ca-bundle", type=click.Path(path_type=Path), envvar="FLYTE_AGENTS_CA_BUNDLE",
              help="Extra CA bundle pip trusts during image builds (TLS-intercepting proxies).")
@click.option("--timeout", "helm_timeout", default="5m", show_default=True,
              help="helm wait timeout per release (a rollout not ready by then is rolled back).")
@click.option("--verify-timeout", default=120.0, show_default=True, help="Seconds to wait for gRPC SERVING.")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of build output.")
def deploy(dry_run, network_mode, ca_bundle, helm_timeout, verify_timeout, verbose, **kw) -> None:
    """Build changed images, push them, helm upgrade --install each service, route propeller, verify."""
    session = Session(kw)
    options = session.options(helm_timeout=helm_timeout, verify_timeout=verify_timeout, network_mode=network_mode,
                              ca_bundle=ca_bundle)
    docker = session.docker()
    session.progress("plan: images, releases, routing")
    plan = dp.plan(session.project, session.cluster, session.kube, session.helm, docker, session.services, options)
    if dry_run:
        _print_plan(plan, session)
        return
    _print_plan_summary(plan, session)
    result = dp.apply(plan, session.project, session.kube, session.helm, docker, options, session.progress,
                      Reporter(session.err, verbose))
    _print_result(result, session)


def _print_plan(plan: dp.DeployPlan, session: Session) -> None:
    if session.json:
        _echo_json(plan.to_dict())
        return
    out = _stdout()
    table = Table("image", "build", "push", "why", box=None, title="images")
    for image in plan.images.images:
        table.add_row(image.ref, _yes(image.build), _yes(image.push), "; ".join(image.reasons()))
    out.print(table)
    table = Table("release", "env", "action", "why", "endpoint", box=None, title="releases")
    for release in plan.releases:
        table.add_row(release.release, release.service.environment, release.action, release.reason,
                      release.endpoint)
    out.print(table)
    for release in plan.releases:
        if release.diff:
            out.print(f"values diff of {release.release}:", highlight=False)
            out.print(escape(release.diff), highlight=False)
    routing_plan = plan.routing.plan
    out.print(f"routing ({plan.cluster.naming.plugin}, {plan.cluster.target.write_config_map}/"
              f"{plan.cluster.target.file_name}): " + ("; ".join(routing_plan.changes) if routing_plan and
                                                       plan.routing_changes else "unchanged"), highlight=False)
    if routing_plan and plan.routing_changes:
        out.print(escape(routing_plan.effective_diff()), highlight=False)
    for sid, now in plan.discover.items():
        out.print(f"task types of {sid}: discovered at deploy time from its pods (ListAgents, after helm, before "
                  f"propeller is touched); routed now: {', '.join(now) or 'nothing'}", highlight=False)
    out.print(f"propeller restart: {'yes' if plan.restart else 'no'}")
    if plan.nothing_to_do:
        out.print("nothing to do: 0 builds, 0 pushes, 0 helm upgrades, 0 restarts")


def _print_plan_summary(plan: dp.DeployPlan, session: Session) -> None:
    builds = sum(i.build for i in plan.images.images)
    pushes = sum(i.push for i in plan.images.images)
    changed = [f"{r.action} {r.release}" for r in plan.releases if r.action != "unchanged"]
    discover = f" (task types of {', '.join(plan.discover)} discovered after helm)" if plan.discover else ""
    session.progress(f"plan: {builds} builds, {pushes} pushes, helm: {', '.join(changed) or 'no changes'}, "
                     f"routing: {'changes' if plan.routing_changes else 'unchanged'}{discover}, propeller restart: "
                     f"{'yes' if plan.restart else 'no'}")


def _print_result(result: dp.DeployResult, session: Session) -> None:
    if session.json:
        _echo_json(result.to_dict())
    else:
        _verified_table(result.plan.releases, result.verify, result.routed)
    nothing = not (result.built or result.pushed or result.upgraded or result.routing_written or result.restarted)
    if nothing:
        session.err.print("[green]nothing to do:[/] 0 builds, 0 pushes, 0 helm upgrades, routing unchanged, "
                          "0 restarts; verified")
    else:
        session.err.print(f"[green]deployed and verified[/] in {result.seconds:.0f}s: {result.built} builds, "
                          f"{result.pushed} pushes, {len(result.upgraded)} helm upgrades "
                          f"({', '.join(result.upgraded) or '-'}), routing "
                          f"{'written' if result.routing_written else 'unchanged'}, propeller "
                          f"{'restarted' if result.restarted else 'not restarted'}")


def _verified_table(releases: list[dp.ReleasePlan], verify: dp.VerifyResult, routed: list[fc.AgentService]) -> None:
    routes = {s.id: ("default + " if s.default else "") + ", ".join(s.task_types) for s in routed}
    table = Table("service", "env", "image", "endpoint", "health", "serves", "routed", box=None)
    for release in releases:
        probes = verify.probes.get(release.service.id, [])
        health = ", ".join(sorted({p.health or "no answer" for p in probes})) or "no pod"
        table.add_row(release.service.id, release.service.environment, release.image, release.endpoint, health,
                      ", ".join(verify.served(release.service.id)), routes.get(release.service.id, "not routed"))
    _stdout().print(table)


# ------------------------------------------------------------------------------------------------ verify

@click.command("verify")
@target_options
@click.option("--endpoint", help="Check this host:port instead of port-forwarding to the pods (one service).")
@click.option("--verify-timeout", default=30.0, show_default=True, help="Seconds to wait for gRPC SERVING.")
def verify(endpoint, verify_timeout, **kw) -> None:
    """gRPC health and ListAgents of each service, cross-checked against propeller's routing."""
    session = Session(kw)
    releases, routed = dp.installed(session.project, session.cluster, session.kube, session.helm, session.services,
                                    _builtin(session))
    endpoints = {}
    if endpoint:
        if len(releases) != 1:
            raise UserError("--endpoint checks one service: add --service ID")
        endpoints = {releases[0].service.id: endpoint}
    result = dp.verify(session.kube, session.cluster, releases, routed, verify_timeout, endpoints=endpoints,
                       progress=session.progress)
    if session.json:
        _echo_json(result.to_dict())
    else:
        _verified_table(releases, result, routed)
    if not result.ok:
        from ..errors import VerificationFailed

        raise VerificationFailed(f"verification failed: {' | '.join(result.errors)}")
    session.err.print(f"[green]verified:[/] {len(releases)} services serve what propeller routes to them")


# ------------------------------------------------------------------------------------------------ status

@click.command("status")
@target_options
def status(**kw) -> None:
    """One row per service: release, revision, image, ready replicas, endpoint, routed task types, drift."""
    session = Session(kw)
    plan = dp.plan(session.project, session.cluster, session.kube, session.helm, session.docker(),
                   session.services, session.options())
    rows = dp.status(plan, session.kube)
    if session.json:
        _echo_json({"cluster": session.cluster.to_dict(), "services": [r.to_dict() for r in rows],
                    "routing_drift": plan.routing_changes})
        return
    table = Table("service", "env", "release", "rev", "status", "image", "ready", "endpoint", "routed", "drift",
                  box=None)
    for row in rows:
        table.add_row(row.service, row.environment, row.release, str(row.revision or "-"), row.status, row.image,
                      row.ready, row.endpoint, ", ".join(row.routed) or "-", "; ".join(row.drift) or "none")
    _stdout().print(table)
    if plan.routing_changes:
        session.err.print("[yellow]routing drift:[/] propeller's config differs from the project file: run deploy")


# ------------------------------------------------------------------------------------------------ undeploy

@click.command("undeploy")
@target_options
@click.option("--dry-run", is_flag=True, help="Print what would be removed and change nothing.")
@click.option("--timeout", "helm_timeout", default="5m", show_default=True, help="helm uninstall timeout.")
def undeploy(dry_run, helm_timeout, **kw) -> None:
    """Uninstall the services' releases and remove exactly the routing flyte-agents added."""
    session = Session(kw)
    result = dp.undeploy(session.project, session.cluster, session.kube, session.helm, session.services,
                         session.options(helm_timeout=helm_timeout), dry_run, session.progress)
    if session.json:
        _echo_json(result.to_dict())
        return
    verb = "would uninstall" if dry_run else "uninstalled"
    click.echo(f"{verb}: {', '.join(result.uninstalled) or 'nothing (no release installed)'}")
    routing_verb = "would restore" if dry_run else "restored"
    click.echo(f"routing: {routing_verb if result.routing.written else 'unchanged'}; propeller: "
               f"{result.routing.rollout}")


def _yes(value: bool) -> str:
    return "yes" if value else "-"
