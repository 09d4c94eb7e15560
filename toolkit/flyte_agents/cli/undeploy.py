"""`flyte-agents undeploy`: remove the services' releases and exactly the routing flyte-agents added."""
from __future__ import annotations

import click

from .params import DURATION
from .target import Session, echo_json, target_options


@click.command("undeploy")
@target_options
@click.option("--dry-run", is_flag=True, help="Print what would be removed and change nothing.")
@click.option("--timeout", "helm_timeout", type=DURATION, default="5m", show_default=True,
              help="helm uninstall timeout.")
def undeploy(dry_run, helm_timeout, **kw) -> None:
    """Uninstall the services' releases and remove exactly the routing flyte-agents added."""
    session = Session(kw)
    from ..workflows import deploy as dp
    from ..workflows.dev import clean_leftovers

    if not dry_run:  # what a killed `dev` left (its routing key, Service, Endpoints) goes first
        clean_leftovers(session.kube, session.cluster, list(session.services), session.progress)
    result = dp.undeploy(session.project, session.cluster, session.kube, session.helm, session.services,
                         session.options(helm_timeout=helm_timeout), dry_run, session.progress)
    if session.json:
        echo_json(result.to_dict())
        return
    verb = "would uninstall" if dry_run else "uninstalled"
    click.echo(f"{verb}: {', '.join(result.uninstalled) or 'nothing (no release installed)'}")
    routing_verb = "would restore" if dry_run else "restored"
    click.echo(f"routing: {routing_verb if result.routing.written else 'unchanged'}; propeller: "
               f"{result.routing.rollout}")
