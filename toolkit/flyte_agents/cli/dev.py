"""`flyte-agents dev`: the service's agent server from source on this machine, routed from propeller, reloaded on
every save; everything back as it was on Ctrl-C or SIGTERM."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from .target import Session, target_options


@click.command("dev")
@target_options
@click.option("--python", "python", help="Python of the project's environment, with flytekit (default: python3 on "
              "PATH).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port of the local server (default: a free one).")
@click.option("--host-address", help="The address at which the cluster reaches this machine (default: detected).")
@click.option("--config-file", type=click.Path(path_type=Path), help="Propeller runs on this machine (flytectl demo "
              "start --dev) from this config file: write the routing there, endpoint on 127.0.0.1.")
def dev(python, port, host_address, config_file, **kw) -> None:
    """Serve one service's agent from source on this machine and route its task types to it until Ctrl-C."""
    from ..flyte.versions import FlyteVersion
    from ..workflows import dev as wf  # the clients it brings load only when the command runs
    from ..workflows.project import load

    project = load(kw["project_file"])
    service = wf.pick_service(project, kw["service_ids"])
    source = wf.source_of(project, service)
    if config_file is not None and (kw["sandbox"] or kw["context"] or host_address):
        raise UserError("--config-file is propeller on this machine: drop --sandbox, --context and --host-address")
    python = python or wf.interpreter()
    wf.check_local(python, port, host_address)
    options = wf.Options(python, port, host_address, kw["builtin"])
    if config_file is not None:
        version = FlyteVersion.parse(kw["flyte_version"]) if kw["flyte_version"] else None
        target = wf.FileTarget(project, service, config_file, version, click.echo)
    else:
        session = Session({**kw, "service_ids": (service.id,)})
        target = wf.ClusterTarget(project, service, session.cluster, session.kube, session.helm, options, click.echo)
    click.echo(f"dev {service.id}: {', '.join(source.modules)} from {source.context} with {python}")
    result = wf.run(source, target, options, click.echo)
    click.echo(f"dev {service.id} stopped after {result.seconds:.0f}s and {max(result.reloads - 1, 0)} reload(s); "
               "routing and cluster objects are as before")
