"""`flyte-agents build`: content-tagged agent images, built only when their inputs changed, pushed only when the
registry lacks them, optionally side-loaded into the Flyte sandbox's containerd.

Progress goes to stderr; stdout carries only the result (a table, or JSON with --output json), so CI can parse it.
The Docker SDK and the image workflow are imported once the command line has been checked.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import UserError
from ..imageref import DOCKER_HUB, SANDBOX_CONTAINER, SANDBOX_REGISTRY, split_registry, validate_registry, \
    validate_repository

if TYPE_CHECKING:
    from rich.console import Console

    from ..workflows import images

OUTPUTS = ("table", "json")


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
    from ..workflows import image_tags as tags

    if len(contexts) > 1 and (dockerfile or name):
        raise UserError("--file and --name apply to one context: build several contexts without them, or one at "
                        "a time")
    repositories = []
    for context in contexts:
        tags.check_context(context)
        # --name is blamed only when the user passed it; else the name comes from the context directory.
        repository = validate_repository(name) if name else validate_repository(
            tags.repository_name(context), f"the image name from context directory {context} (pass --name):")
        if registry:
            repository = validate_repository(f"{registry}/{repository}", "--registry with the image name:")
        repositories.append(repository)
    from ..workflows import images  # the Docker SDK comes with it: only once the names are checked

    return [images.ImageSpec(context.resolve(), repository, dockerfile.resolve() if dockerfile else None, build_args,
                             target, platform) for context, repository in zip(contexts, repositories)]


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise UserError(f"--output {output!r} is unknown: use {' or '.join(OUTPUTS)}")
    return output


# ------------------------------------------------------------------------------------------------ output


def print_plan(build_plan: images.BuildPlan, output: str) -> None:
    from rich.table import Table

    from .output import stdout, yes

    if output == "json":
        click.echo(json.dumps(build_plan.to_dict(), indent=2))
        return
    table = Table("image", "build", "push", "side-load", "why", box=None)
    for image in build_plan.images:
        table.add_row(image.ref, yes(image.build), yes(image.push), yes(image.side_load),
                      "; ".join(image.reasons()))
    stdout().print(table)


def print_result(result: images.BuildResult, output: str, err: Console) -> None:
    from rich.table import Table

    from .output import stdout, yes

    summary = result.to_dict()
    if output == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        table = Table("repository", "tag", "digest", "built", "pushed", "side-loaded", box=None)
        for image in result.images:
            table.add_row(image.repository, image.tag, image.digest or image.image_id or "", yes(image.built),
                          yes(image.pushed), yes(image.side_loaded))
        stdout().print(table)
    if not (summary["builds"] or summary["pushes"] or summary["side_loads"]):
        err.print("[green]nothing to do:[/] 0 builds, 0 pushes, 0 side-loads (every image is up to date)")
    else:
        err.print(f"{summary['builds']} builds, {summary['pushes']} pushes, {summary['side_loads']} side-loads")


# ------------------------------------------------------------------------------------------------ command


@click.command("build")
@click.argument("contexts", nargs=-1, type=click.Path(path_type=Path))
@click.option("-f", "--file", "dockerfile", type=click.Path(path_type=Path),
              help="Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--name", help="Image repository name (default: the context directory's name).")
@click.option("--registry", help="Registry (HOST[:PORT][/NAMESPACE]) the repository lives in.")
@click.option("--push", is_flag=True, help="Push images the registry does not have yet.")
@click.option("--sandbox", is_flag=True, help=f"Target the Flyte sandbox: registry {SANDBOX_REGISTRY}, "
              "and push unless --side-load.")
@click.option("--side-load", is_flag=True, help="Import into the sandbox container's containerd (docker save | "
              "ctr import) and verify, instead of pushing.")
@click.option("--sandbox-container", default=SANDBOX_CONTAINER, show_default=True,
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
        registry = registry or SANDBOX_REGISTRY
        push = push or not side_load
    if registry:
        registry = validate_registry(registry)
    specs = image_specs(contexts or (Path("agent_image"),), dockerfile, name, registry,
                        parse_build_args(build_args), target, platform)
    if push and any(split_registry(s.repository)[0] == DOCKER_HUB and not registry for s in specs):
        raise UserError("--push needs a registry: pass --registry HOST[:PORT][/NAMESPACE] (or --sandbox)")
    from rich.console import Console

    from ..adapters.docker import DockerEngine
    from ..workflows import images
    from .output import Reporter

    options = images.Options(push=push, side_load=sandbox_container if side_load else None, git_prefix=git_prefix,
                             ca_bundle=ca_bundle, offline=offline, network_mode=network_mode, dry_run=dry_run)
    images.check_inputs(specs, options)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    docker = DockerEngine.connect()
    build_plan = images.plan(specs, options, docker)
    if dry_run:
        print_plan(build_plan, output)
        return
    result = images.apply(build_plan, docker, Reporter(err, verbose))
    print_result(result, output, err)
