"""The `flyte-agents` command line: the command group, main() and the console script.

Each command `X` is the click command `X` of module `cli/X.py`, imported only when invoked, so `flyte-agents --help`
stays fast (kubernetes, docker and flyteidl are heavy imports).
"""
from __future__ import annotations

import atexit
import importlib
import os
import sys

import click

from .. import __version__
from ..errors import FlyteAgentsError

# command (= its module in this package and the click command in it) -> one-line help for the command list.
COMMANDS: dict[str, str] = {
    "build": "Build agent images with content tags; push or side-load what changed.",
    "config": "Render, diff, lint, apply or remove propeller's agent routing.",
    "conformance": "Check an agent server in any language against what propeller does.",
    "deploy": "Build, push, helm-install, route and verify the project's services.",
    "init": "Create a new agent service: package, local test, layered Dockerfile, project entries.",
    "dev": "Serve a service's agent from source here, routed from propeller, reloaded on save.",
    "status": "Releases, images, readiness, routing and drift of each service.",
    "undeploy": "Remove the services' releases and exactly the routing added.",
    "verify": "gRPC health + ListAgents per service, cross-checked with routing.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return getattr(importlib.import_module(f"{__package__}.{name}"), name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table, not from importing every command module.
        rows = [(name, COMMANDS[name]) for name in sorted(COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flyte-agents")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Build, load, Helm-deploy, route and verify Flyte agent (connector) services."""
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="flyte-agents", standalone_mode=False)
    except FlyteAgentsError as err:  # one line, no traceback, unless --debug
        if "--debug" in (argv if argv is not None else sys.argv):
            raise
        click.echo(f"error: {err}", err=True)
        return err.exit_code
    except click.exceptions.Abort:  # click's form of Ctrl-C (e.g. during an image build): one line, like the rest
        click.echo("error: interrupted (Ctrl-C)", err=True)
        return 130
    except click.UsageError as err:  # a bad option or value: one line like every other input error, no usage text
        click.echo(f"error: {' '.join(err.format_message().split())}", err=True)
        return 2
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return 0


def run() -> None:
    """The console script: main(), then exit without finalizing the interpreter. Tearing down the ~1,600 modules a
    deploy loads (the kubernetes client alone brings 1,000) takes a tenth of a second, a tenth of a no-op deploy.
    Output is flushed and atexit handlers (kubernetes' temporary certificate files) still run."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    run()
