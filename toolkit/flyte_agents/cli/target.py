"""What deploy, verify, status and undeploy share: the target options, the Session they open (project, cluster,
helm) and the result printing.

Progress goes to stderr; stdout carries only the result (a table, or JSON with --output json).
Every option and the project file are checked before the first connection; the clients (kubernetes, helm, rich,
the workflows) are imported after that, so a bad input exits without paying for them.
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from ..errors import UserError
from .params import NAMESPACE, VERSION

if TYPE_CHECKING:
    from ..adapters.helm import Helm
    from ..flyte.propeller_target import Flavor
    from ..workflows.project import Project, ServiceConfig
    from ..flyte.services import AgentService
    from ..workflows import deploy as dp

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
        click.option("--namespace", "-n", type=NAMESPACE,
                     help="Namespace of the releases (default: the project's namespace)."),
        click.option("--propeller-namespace", type=NAMESPACE, default="flyte", show_default=True,
                     help="Namespace of Flyte's propeller."),
        click.option("--flavor", default="auto", show_default=True,
                     help="auto, sandbox, flyte-binary or flyte-core."),
        click.option("--flyte-version", type=VERSION,
                     help="Flyte version, when the cluster does not tell (e.g. 1.16)."),
        click.option("--registry", help="Registry images are pushed to and pulled from (sandbox: localhost:30000)."),
        click.option("--helm", "helm_binary", help="helm 3 or 4 binary (default: $FA_HELM, then helm on PATH)."),
        click.option("--builtin", help="Sandbox: keep the built-in flyteagent/flyteconnector as propeller's "
                     "default, or replace it with the project's default service (default: the project's "
                     "sandbox.builtin)."),
        click.option("--output", "-o", default="table", show_default=True, help="table or json (stdout)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass(frozen=True)
class Checked:
    """The command line and the project file, checked: everything a Session needs before it connects."""

    project: Project
    services: tuple[ServiceConfig, ...]
    flavor: Flavor | None
    registry: str | None
    kubeconfig: str  # the files, ':'-joined
    context: str
    namespace: str  # the releases'
    helm_binary: str


def check(kw: dict[str, Any]) -> Checked:
    """Every input of a cluster command, in the order a user fixes them; UserError on the first bad one."""
    # The project loader and the cluster workflows load the Flyte core; --help and option errors do not.
    from ..adapters import kubeconfig as kubeconfigs
    from ..adapters.helm import find_binary
    from ..flyte import propeller_target as pt
    from ..imageref import validate_registry
    from ..workflows import sandbox as sb
    from ..workflows.project import BUILTIN_MODES, load

    if kw["output"] not in OUTPUTS:
        raise UserError(f"--output {kw['output']!r} is unknown: use table or json")
    if kw["builtin"] not in (None, *BUILTIN_MODES):
        raise UserError(f"--builtin {kw['builtin']!r} is unknown: use {' or '.join(BUILTIN_MODES)}")
    project = load(kw["project_file"])
    services = project.select(kw["environment"], kw["service_ids"])
    if kw["sandbox"] and kw["context"]:
        raise UserError("--sandbox and --context exclude each other: the sandbox's context is flyte-sandbox")
    if not kw["sandbox"] and kw["builtin"]:
        raise UserError("--builtin applies to the sandbox only: add --sandbox or drop --builtin")
    if kw["sandbox"] and kw["namespace"] not in (None, sb.NAMESPACE):
        raise UserError(f"--namespace {kw['namespace']}: sandbox releases go to {sb.NAMESPACE}")
    flavor = pt.parse_flavor(kw["flavor"])
    # The project's `registry` was checked (and is blamed) by the project loader.
    registry = validate_registry(kw["registry"]) if kw["registry"] else None if kw["sandbox"] else project.registry
    if kw["sandbox"]:
        kubeconfig, context, namespace = sb.sandbox_kubeconfig(kw["kubeconfig"]), sb.CONTEXT, sb.NAMESPACE
    else:
        found = kubeconfigs.load(kw["kubeconfig"])
        kubeconfig, context = found.location, found.context(kw["context"])
        namespace = kw["namespace"] or project.namespace
    return Checked(project, services, flavor, registry, kubeconfig, context, namespace,
                   find_binary(kw["helm_binary"]))


class Session:
    """The parsed command line and the connections it implies, opened once per command."""

    def __init__(self, kw: dict[str, Any]) -> None:
        from rich.console import Console

        from ..workflows import sandbox as sb

        self.kw = kw
        checked = check(kw)
        self.project, self.services = checked.project, checked.services
        self.err = Console(stderr=True, soft_wrap=True)
        # Input checked: from here on, connections. helm's own start-up and its lookups of the project's releases
        # run while the Kubernetes client loads.
        helm = _in_background(_open_helm, checked.helm_binary, checked.kubeconfig, checked.context,
                              [s.id for s in self.project.services], checked.namespace)
        if kw["sandbox"]:
            self.cluster, self.kube = sb.detect_sandbox(checked.kubeconfig, checked.registry)
        else:
            self.cluster, self.kube = sb.detect_cluster(checked.kubeconfig, checked.context, checked.namespace,
                                                        kw["propeller_namespace"], checked.flavor,
                                                        kw["flyte_version"], checked.registry)
        self.helm: Helm = helm.result()
        self.progress("target: " + ", ".join(f"{k} {v}" for k, v in (
            ("context", self.cluster.context), ("Flyte", self.cluster.version), ("plugin", self.cluster.naming.plugin),
            ("propeller", f"{self.cluster.target.namespace}/{self.cluster.target.deployment}"),
            ("registry", self.cluster.registry or "-"), ("helm", self.helm.version))))

    @property
    def json(self) -> bool:
        return self.kw["output"] == "json"

    def progress(self, message: str) -> None:
        from rich.markup import escape

        self.err.print(f"[dim]•[/] {escape(message)}")

    def options(self, **extra: Any) -> dp.Options:
        from ..workflows import deploy as dp

        return dp.Options(builtin=self.kw["builtin"], **extra)

    def docker(self) -> Any:
        from ..adapters.docker import DockerEngine

        return DockerEngine.connect()


def _open_helm(binary: str | None, kubeconfig: str, context: str | None, releases: list[str],
               namespace: str) -> Helm:
    from ..adapters.helm import Helm

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


def echo_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def verified_table(releases: list[dp.ReleasePlan], verify: dp.VerifyResult, routed: list[AgentService]) -> None:
    from rich.table import Table

    from .output import stdout

    routes = {s.id: ("default + " if s.default else "") + ", ".join(s.task_types) for s in routed}
    table = Table("service", "env", "image", "endpoint", "health", "serves", "routed", box=None)
    for release in releases:
        probes = verify.probes.get(release.service.id, [])
        health = ", ".join(sorted({p.health or "no answer" for p in probes})) or "no pod"
        table.add_row(release.service.id, release.service.environment, release.image, release.endpoint, health,
                      ", ".join(verify.served(release.service.id)), routes.get(release.service.id, "not routed"))
    stdout().print(table)
    for finding in verify.findings:  # errors fail the command with their own line; warnings only show here
        if finding.severity == "warning":
            click.echo(finding.line(), err=True)
