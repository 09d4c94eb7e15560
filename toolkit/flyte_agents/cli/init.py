"""`flyte-agents init`: a new agent service (package, task, local test, layered Dockerfile, values, project entries)."""
from __future__ import annotations

import json
from pathlib import Path

import click

EXAMPLES = """\b
Examples:
  flyte-agents init my-agent                       # async connector for Flyte 1.16, in this directory
  flyte-agents init my-lookup --sync --flyte-version 1.15 --into ../agents
  flyte-agents init my-agent --task-type my_query --dry-run

\b
Then: cd my-agent/my_agent && pip install -e '.[test]' && pytest; flyte-agents deploy --sandbox"""


@click.command("init", epilog=EXAMPLES)
@click.argument("name")
@click.option("--sync/--async", "sync", default=False, show_default=True,
              help="A sync agent (`do`, one call) or an async one (`create`, `get`, `delete`).")
@click.option("--task-type", help="The task type it serves (default: NAME as a Python package, e.g. my_agent).")
@click.option("--flyte-version", default="1.16", show_default=True,
              help="Target Flyte: 1.16 writes connector names and `pyflyte serve connector`; 1.13-1.15 agent names "
                   "and `pyflyte serve agent`.")
@click.option("--into", "into", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="The project directory: its flyte-agents.yaml gets the new image and service (created when "
                   "missing).  [default: .]")
@click.option("--dry-run", is_flag=True, help="List what would be written; write nothing.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def init(name, sync, task_type, flyte_version, into, dry_run, output) -> None:
    """Create a new agent service NAME that builds, tests, deploys and runs from its first minute, offline.

    Writes an agent package (pyproject.toml with the flytekit.plugins entry point; the agent and a task class with
    the executor mixin, so `pyflyte run` runs it locally through the agent), a pytest test that does that, a
    Dockerfile with dependencies and agent code in separate layers, values files, and adds an image and a service to
    flyte-agents.yaml. Never overwrites a file.
    """
    from ..workflows import scaffold as wf  # the templates and the YAML round-trip load only when it runs

    prepared = wf.prepare(wf.Request(name, sync, task_type, flyte_version, into))
    if not dry_run:
        wf.write(prepared)
    if output == "json":
        click.echo(json.dumps(prepared.to_dict(written=not dry_run), indent=2))
        return
    scaffold, would = prepared.scaffold, "would " if dry_run else ""
    for path in prepared.paths:
        click.echo(f"{would}write {path}")
    entries = f"image {scaffold.image.name} and service {scaffold.service.id} (task type {scaffold.names.task_type})"
    if prepared.project_created:
        click.echo(f"{would}create {prepared.project_file} with {entries}")
    else:
        click.echo(f"{would}add {entries} to {prepared.project_file}")
    if prepared.missing_chart:
        click.echo(f"note: the project's chart {prepared.missing_chart} does not exist: copy the flyte-agent chart "
                   "(charts/flyte-agent of the flyte-agents repository) there before deploying", err=True)
    if not dry_run:
        default = prepared.project_file == Path(wf.projects.DEFAULT_FILE)
        project = "" if default else f" --project {prepared.project_file}"
        click.echo(f"next: cd {into / scaffold.names.context / scaffold.names.package} && pip install -e '.[test]' "
                   "&& pytest")
        click.echo(f"      flyte-agents deploy --sandbox{project}")
