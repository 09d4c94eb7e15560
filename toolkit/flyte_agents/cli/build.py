"""`flyte-agents build`: content-tagged agent images, built only when their inputs changed, pushed only when the
registry lacks them, optionally side-loaded into the Flyte sandbox's containerd.

Progress goes to stderr; stdout carries only the result (a table, or JSON with --output json), so CI can parse it.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..adapters.docker import BuildOutput, BuildStep, DockerEngine, PushProgress, StepFailed
from ..errors import UserError
from ..imageref import DOCKER_HUB, split_registry, validate_registry, validate_repository
from ..workflows import image_tags as tags
from ..workflows import images

OUTPUTS = ("table", "json")
FAILED_STEP_LINES = 60  # the end of a failed step's output is what explains the failure
BUILDER_CHATTER = re.compile(r"^ ---> |^Removing intermediate container ")  # the legacy builder's own lines


class Reporter:
    """Renders pipeline events on stderr: stages and build steps with elapsed time, a failed step's output."""

    def __init__(self, console: Console, verbose: bool):
        self.console = console
        self.verbose = verbose
        self.step_lines: list[str] = []
        self.step_started = self.stage_started = time.monotonic()
        self.layers: dict[str, str] = {}
        self.status = console.status("") if console.is_terminal else None

    def __call__(self, event) -> None:
        if isinstance(event, images.Stage):
            self._stage(event)
        elif isinstance(event, BuildStep):
            self.step_lines, self.step_started = [], time.monotonic()
            elapsed = self.step_started - self.stage_started
            self.console.print(f"  [dim]{elapsed:6.1f}s step {event.number}/{event.total}[/] "
                               f"{escape(event.instruction[:120])}")
            self._live(f"step {event.number}/{event.total}: {event.instruction[:60]}")
        elif isinstance(event, BuildOutput):
            self._output(event.line)
        elif isinstance(event, StepFailed):
            self._failed(event)
        elif isinstance(event, PushProgress):
            self._push(event)

    def _stage(self, stage: images.Stage) -> None:
        ref = escape(stage.ref)
        if stage.state == "start":
            self.stage_started = time.monotonic()
            self.console.print(f"[bold]{stage.action}[/] {ref}")
            self._live(f"{stage.action} {stage.ref}")
        elif stage.state == "skip":
            self.console.print(f"[green]{stage.action} skipped[/] {ref}: {escape(stage.detail)}")
        elif stage.state == "retry":
            self.console.print(f"[yellow]{stage.action} retry[/] {ref}: {escape(stage.detail)}")
        else:
            self._stop_live()
            detail = f" {escape(stage.detail)}" if stage.detail else ""
            self.console.print(f"[green]{stage.action} done[/] {ref}{detail} ({stage.seconds:.1f}s)")

    def _output(self, line: str) -> None:
        if BUILDER_CHATTER.match(line):
            return
        self.step_lines.append(line)
        if self.verbose:
            self.console.print(f"    {escape(line)}")
        elif self.status is not None:
            self._live(line[:100])

    def _failed(self, failed: StepFailed) -> None:
        self._stop_live()
        where = f"step {failed.step.number}/{failed.step.total}" if failed.step else "the build"
        if not self.verbose and self.step_lines:
            shown = self.step_lines[-FAILED_STEP_LINES:]
            self.console.print(f"[red]{where} failed after {time.monotonic() - self.step_started:.1f}s; "
                               f"its last {len(shown)} output lines:[/]")
            for line in shown:
                self.console.print(f"    {escape(line)}")

    def _push(self, progress: PushProgress) -> None:
        if progress.status != self.layers.get(progress.layer):
            self.layers[progress.layer] = progress.status
            if self.verbose:
                self.console.print(f"    layer {progress.layer}: {progress.status}")
        if progress.total:
            self._live(f"layer {progress.layer}: {(progress.current or 0) >> 20}/{progress.total >> 20} MiB")

    def _live(self, text: str) -> None:
        if self.status is not None:
            self.status.update(escape(text))
            self.status.start()

    def _stop_live(self) -> None:
        if self.status is not None:
            self.status.stop()


# ------------------------------------------------------------------------------------------------ input


def parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    """KEY=VALUE, or KEY alone to take the value from the environment (as `docker build` does)."""
    args = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key or not key.replace("_", "a").isalnum():
            raise UserError(f"--build-arg {value!r} is not KEY=VALUE: use e.g. --build-arg FLYTEKIT_VERSION=1.16.1")
        if not sep:
            if key not in os.environ:
                raise UserError(f"--build-arg {key} has no value and ${key} is not set: use --build-arg {key}=VALUE")
            val = os.environ[key]
        args[key] = val
    return args


def image_specs(contexts: tuple[Path, ...], dockerfile: Path | None, name: str | None, registry: str | None,
                build_args: dict[str, str], target: str | None, platform: str | None) -> list[images.ImageSpec]:
    if len(contexts) > 1 and (dockerfile or name):
        raise UserError("--file and --name apply to one context: build several contexts without them, or one at "
                        "a time")
    specs = []
    for context in contexts:
        repository = validate_repository(name or tags.repository_name(context))
        if registry:
            repository = validate_repository(f"{registry}/{repository}")
        specs.append(images.ImageSpec(context.resolve(), repository, dockerfile.resolve() if dockerfile else None,
                                      build_args, target, platform))
    return specs


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise UserError(f"--output {output!r} is unknown: use {' or '.join(OUTPUTS)}")
    return output


# ------------------------------------------------------------------------------------------------ output


def print_plan(build_plan: images.BuildPlan, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(build_plan.to_dict(), indent=2))
        return
    table = Table("image", "build", "push", "side-load", "why", box=None)
    for image in build_plan.images:
        table.add_row(image.ref, _yes(image.build), _yes(image.push), _yes(image.side_load),
                      "; ".join(image.reasons()))
    _stdout().print(table)


def print_result(result: images.BuildResult, output: str, err: Console) -> None:
    summary = result.to_dict()
    if output == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        table = Table("repository", "tag", "digest", "built", "pushed", "side-loaded", box=None)
        for image in result.images:
            table.add_row(image.repository, image.tag, image.digest or image.image_id or "", _yes(image.built),
                          _yes(image.pushed), _yes(image.side_loaded))
        _stdout().print(table)
    if not (summary["builds"] or summary["pushes"] or summary["side_loads"]):
        err.print("[green]nothing to do:[/] 0 builds, 0 pushes, 0 side-loads (every image is up to date)")
    else:
        err.print(f"{summary['builds']} builds, {summary['pushes']} pushes, {summary['side_loads']} side-loads")


def _stdout() -> Console:
    # Piped output (CI logs) gets full-width rows instead of columns truncated to 80 characters.
    console = Console()
    return console if console.is_terminal else Console(width=400)


def _yes(value: bool) -> str:
    return "yes" if value else "-"


# ------------------------------------------------------------------------------------------------ command


@click.command("build")
@click.argument("contexts", nargs=-1, type=click.Path(path_type=Path))
@click.option("-f", "--file", "dockerfile", type=click.Path(path_type=Path),
              help="Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--name", help="Image repository name (default: the context directory's name).")
@click.option("--registry", help="Registry (HOST[:PORT][/NAMESPACE]) the repository lives in.")
@click.option("--push", is_flag=True, help="Push images the registry does not have yet.")
@click.option("--sandbox", is_flag=True, help=f"Target the Flyte sandbox: registry {images.SANDBOX_REGISTRY}, "
              "and push unless --side-load.")
@click.option("--side-load", is_flag=True, help="Import into the sandbox container's containerd (docker save | "
              "ctr import) and verify, instead of pushing.")
@click.option("--sandbox-container", default=images.SANDBOX_CONTAINER, show_default=True,
              help="The sandbox's Docker container, for --side-load.")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="Build argument (repeatable).")
@click.option("--target", help="Dockerfile stage to build.")
@click.option("--platform", help="Target platform, e.g. linux/amd64.")
@click.option("--network", "network_mode", help="Network for RUN steps, e.g. host.")
@click.option("--git-sha", "git_prefix", is_flag=True, help="Prefix tags with the git short SHA (and -dirty).")
@click.option("--offline", is_flag=True, help="pip download the requirements on this host into a cached "
              "wheelhouse and install from it in the build (no index access from the build).")
@click.option("--ca-bundle", type=click.Path(path_type=Path), envvar="FLYTE_AGENTS_CA_BUNDLE",
              help="Extra CA bundle pip trusts during the build only (TLS-intercepting proxies). Does not change "
              "the tag.")
@click.option("--dry-run", is_flag=True, help="Print the plan (tags; what would be built/pushed) and stop.")
@click.option("--output", "-o", default="table", show_default=True, help="table or json (stdout).")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of build output.")
def build(contexts, dockerfile, name, registry, push, sandbox, side_load, sandbox_container, build_args, target,
          platform, network_mode, git_prefix, offline, ca_bundle, dry_run, output, verbose) -> None:
    """Build agent images (default context: agent_image) with content-addressed tags."""
    output = _check_output(output)
    if sandbox or side_load:
        registry = registry or images.SANDBOX_REGISTRY
        push = push or not side_load
    if registry:
        registry = validate_registry(registry)
    specs = image_specs(contexts or (Path("agent_image"),), dockerfile, name, registry,
                        parse_build_args(build_args), target, platform)
    if push and any(split_registry(s.repository)[0] == DOCKER_HUB and not registry for s in specs):
        raise UserError("--push needs a registry: pass --registry HOST[:PORT][/NAMESPACE] (or --sandbox)")
    options = images.Options(push=push, side_load=sandbox_container if side_load else None, git_prefix=git_prefix,
                             ca_bundle=ca_bundle, offline=offline, network_mode=network_mode)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    docker = DockerEngine.connect()
    build_plan = images.plan(specs, options, docker)
    if dry_run:
        print_plan(build_plan, output)
        return
    result = images.apply(build_plan, docker, Reporter(err, verbose))
    print_result(result, output, err)
