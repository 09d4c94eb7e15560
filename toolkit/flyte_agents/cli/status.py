"""`flyte-agents status`: release, image, readiness, routing and drift of each service."""
from __future__ import annotations

import click

from .target import Session, echo_json, target_options


@click.command("status")
@target_options
def status(**kw) -> None:
    """One row per service: release, revision, image, ready replicas, endpoint, routed task types, drift."""
    session = Session(kw)
    from rich.table import Table

    from ..workflows import deploy as dp
    from ..workflows.dev import dev_status
    from .output import stdout

    plan = dp.plan(session.project, session.cluster, session.kube, session.helm, session.docker(),
                   session.services, session.options())
    rows = dp.status(plan, session.kube)
    dev = dev_status(session.kube, session.cluster.target.namespace)
    if session.json:
        echo_json({"cluster": session.cluster.to_dict(), "services": [r.to_dict() for r in rows],
                    "routing_drift": plan.routing_changes, "dev": [d.to_dict() for d in dev]})
        return
    table = Table("service", "env", "release", "rev", "status", "image", "ready", "endpoint", "routed", "drift",
                  box=None)
    for row in rows:
        table.add_row(row.service, row.environment, row.release, str(row.revision or "-"), row.status, row.image,
                      row.ready, row.endpoint, ", ".join(row.routed) or "-", "; ".join(row.drift) or "none")
    stdout().print(table)
    for mode in dev:
        click.echo(mode.line)
    if plan.routing_changes:
        session.err.print("[yellow]routing drift:[/] propeller's config differs from the project file: run deploy")
