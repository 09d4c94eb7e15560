"""`flyte-agents deploy`: build, push, helm-install, route and verify the project's services.

Progress goes to stderr; stdout carries only the result (a table, or JSON with --output json).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .params import DURATION, SECONDS
from .target import Session, echo_json, target_options, verified_table

if TYPE_CHECKING:
    from ..workflows import deploy as dp


@click.command("deploy")
@target_options
@click.option("--dry-run", is_flag=True, help="Print the plan (images, releases with values diff, routing, "
              "restart) and change nothing.")
@click.option("--network", "network_mode", envvar="FLYTE_AGENTS_BUILD_NETWORK",
              help="Network for image build RUN steps, e.g. host.")
@click.option("--ca-bundle", type=click.Path(path_type=Path), envvar="FLYTE_AGENTS_CA_BUNDLE",
              help="Extra CA bundle pip trusts during image builds (TLS-intercepting proxies).")
@click.option("--timeout", "helm_timeout", type=DURATION, default="5m", show_default=True,
              help="helm wait timeout per release (a rollout not ready by then is rolled back).")
@click.option("--verify-timeout", type=SECONDS, default=120.0, show_default=True,
              help="Seconds to wait for gRPC SERVING.")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of build output.")
def deploy(dry_run, network_mode, ca_bundle, helm_timeout, verify_timeout, verbose, **kw) -> None:
    """Build changed images, push them, helm upgrade --install each service, route propeller, verify."""
    session = Session(kw)
    from ..workflows import deploy as dp
    from .output import Reporter

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
    from rich.markup import escape
    from rich.table import Table

    from .output import stdout, yes

    if session.json:
        echo_json(plan.to_dict())
        return
    out = stdout()
    table = Table("image", "build", "push", "why", box=None, title="images")
    for image in plan.images.images:
        table.add_row(image.ref, yes(image.build), yes(image.push), "; ".join(image.reasons()))
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
        echo_json(result.to_dict())
    else:
        verified_table(result.plan.releases, result.verify, result.routed)
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
