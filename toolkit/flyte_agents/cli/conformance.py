"""`flyte-agents conformance`: check an agent server, in any language, against what propeller does with it."""
from __future__ import annotations

from pathlib import Path

import click

from typing import TYPE_CHECKING

from ..errors import ConformanceFailed, UserError
from .params import ENDPOINT, SECONDS
from .target import OUTPUTS, Session, echo_json, target_options

if TYPE_CHECKING:
    from ..flyte.conformance import Report

EXAMPLES = """\b
Examples:
  flyte-agents conformance --endpoint localhost:8000
  flyte-agents conformance --endpoint localhost:8000 --task my_task.pb:inputs.pb --junit conformance.xml
  flyte-agents conformance --sandbox --service demo-prod --output json

\b
Exit codes: 0 every check passed (WARN included), 16 a check failed, 13 nothing answers at the endpoint,
14 it is not a gRPC server, 15 TLS on a plaintext port (or plaintext to a TLS port), 2 bad input."""


@click.command("conformance", epilog=EXAMPLES)
@click.option("--endpoint", type=ENDPOINT,
              help="host:port of the agent server to check (instead of a project's --service).")
@click.option("--task", "task_specs", multiple=True, metavar="TEMPLATE[:INPUTS]",
              help="A task to run for its category: a core.TaskTemplate or the admin.TaskSpec `pyflyte serialize` "
                   "writes (.pb or protobuf .json), optionally with a core.LiteralMap of inputs (.pb or .json). "
                   "Repeatable; categories without one get a minimal template.")
@click.option("--wait", type=SECONDS, default=30.0, show_default=True,
              help="Seconds an async task may stay running before GetTask counts as never terminal.")
@click.option("--tls", is_flag=True, help="Speak TLS with the system's roots, as propeller does with insecure: false.")
@click.option("--output-prefix", help="output_prefix sent with each task (default: "
                                      "/tmp/flyte-agents-conformance/<run> on the server).")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the checks as JUnit XML (one testcase per check) to this file.")
@target_options
def conformance(endpoint, task_specs, wait, tls, output_prefix, junit_file, **kw) -> None:
    """Check an agent server (any language) against propeller's contract: health, ListAgents and its latency,
    GetAgent, is_sync, an unknown category, the async lifecycle, the sync stream, concurrent calls.

    One row per check: what was sent, what came back, PASS/WARN/FAIL/SKIP, and what propeller does when it fails.
    """
    _validate(endpoint, junit_file, kw)
    from rich.console import Console
    from rich.markup import escape

    from ..flyte.conformance import Status
    from ..workflows import conformance as wf

    files = wf.load_task_files(task_specs)
    options = wf.Options(wait=wait, output_prefix=output_prefix or "", tls=tls)
    err = Console(stderr=True, soft_wrap=True)

    def progress(message: str) -> None:
        err.print(f"[dim]•[/] {escape(message)}")

    if endpoint:
        report = wf.run(endpoint, f"--endpoint {endpoint}", files, options, progress)
    else:
        session = Session(kw)
        from ..workflows import deploy as dp

        releases, _ = dp.installed(session.project, session.cluster, session.kube, session.helm, session.services,
                                   kw["builtin"] or session.project.builtin)
        report = wf.run_service(session.kube, releases[0], files, options, progress)
    if junit_file:
        junit_file.write_text(report.to_junit())
    if kw["output"] == "json":
        echo_json(report.to_dict())
    else:
        _table(report)
    counts = report.counts()
    templates = ", ".join(f"{t.category} {'minimal' if t.minimal else t.source}" for t in report.tasks) or "none"
    err.print(f"conformance of {report.endpoint} ({report.via}): " +
              ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; templates: {templates}")
    if not report.ok:
        failed = [f"{r.check} {r.subject}" for r in report.rows if r.status is Status.FAIL]
        raise ConformanceFailed(f"{len(failed)} conformance check(s) failed: {', '.join(failed)}")


def _validate(endpoint: str | None, junit_file: Path | None, kw: dict) -> None:
    """Every option checked before the first connection."""
    if kw["output"] not in OUTPUTS:
        raise UserError(f"--output {kw['output']!r} is unknown: use table or json")
    if bool(endpoint) == bool(kw["service_ids"]):
        raise UserError("give --endpoint HOST:PORT or --service ID (one of them)")
    if len(kw["service_ids"]) > 1:
        raise UserError("conformance checks one service at a time: give one --service")
    if junit_file and not junit_file.resolve().parent.is_dir():
        raise UserError(f"--junit {junit_file}: directory {junit_file.resolve().parent} does not exist")


def _table(report: Report) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..flyte.conformance import Status
    from .output import stdout

    colors = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: "dim"}
    table = Table("check", "subject", "result", "sent", "got", "propeller, when it fails", box=None)
    for row in report.rows:
        color = colors[row.status]
        table.add_row(row.check, row.subject, f"[{color}]{row.status.value}[/]", escape(row.sent), escape(row.got),
                      escape(row.consequence))
    stdout().print(table)
