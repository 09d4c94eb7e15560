"""`flyte-agents dev`: the service's agent server from source on this machine, routed from propeller, reloaded on
every save; everything back as it was on Ctrl-C or SIGTERM."""
from __future__ import annotations

import click

from ..workflows.project import load
from .target import Session, target_options


@click.command("dev")
@target_options
@click.option("--python", "python", help="Python of the project's environment, with flytekit (default: python3 on "
              "PATH).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port of the local server (default: a free one).")
@click.option("--host-address", help="The address at which the cluster reaches this machine (default: detected).")
def dev(python, port, host_address, **kw) -> None:
    """Serve one service's agent from source on this machine and route its task types to it until Ctrl-C."""
    from ..workflows import dev as wf  # the clients it brings load only when the command runs

    project = load(kw["project_file"])
    service = wf.pick_service(project, kw["service_ids"])
    source = wf.source_of(project, service)
    python = python or wf.interpreter()
    wf.check_local(python, port)

    def connect():
        session = Session({**kw, "service_ids": (service.id,)})
        return session.cluster, session.kube, session.helm

    click.echo(f"dev {service.id}: {', '.join(source.modules)} from {source.context} with {python}")
    result = wf.run(project, service, source, connect, wf.Options(python, port, host_address, kw["builtin"]),
                    click.echo)
    click.echo(f"dev {service.id} stopped after {result.seconds:.0f}s and {max(result.reloads - 1, 0)} reload(s); "
               "routing and cluster objects are as before")
