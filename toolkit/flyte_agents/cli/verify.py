"""`flyte-agents verify`: gRPC health and ListAgents of each service, cross-checked with propeller's routing."""
from __future__ import annotations

import click

from ..errors import UserError, VerificationFailed
from .params import ENDPOINT, SECONDS
from .target import Session, echo_json, target_options, verified_table


def _builtin(session: Session) -> str:
    return session.kw["builtin"] or session.project.builtin


@click.command("verify")
@target_options
@click.option("--endpoint", type=ENDPOINT,
              help="Check this host:port instead of port-forwarding to the pods (one service).")
@click.option("--verify-timeout", type=SECONDS, default=30.0, show_default=True,
              help="Seconds to wait for gRPC SERVING.")
def verify(endpoint, verify_timeout, **kw) -> None:
    """gRPC health and ListAgents of each service, cross-checked against propeller's routing."""
    session = Session(kw)
    from ..workflows import deploy as dp

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
        echo_json(result.to_dict())
    else:
        verified_table(releases, result, routed)
    if not result.ok:
        raise VerificationFailed(f"verification failed: {' | '.join(result.errors)}")
    session.err.print(f"[green]verified:[/] {len(releases)} services serve what propeller routes to them")
