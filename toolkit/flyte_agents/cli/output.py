"""What the commands print with rich: the result table on stdout and the build/push progress on stderr.

Imported by a command once its input is checked (rich, the Docker SDK and the image workflow load with it).
"""
from __future__ import annotations

import re
import time

from rich.console import Console
from rich.markup import escape

from ..adapters.docker import BuildOutput, BuildStep, PushProgress, StepFailed
from ..workflows import images

FAILED_STEP_LINES = 60  # the end of a failed step's output is what explains the failure
BUILDER_CHATTER = re.compile(r"^ ---> |^Removing intermediate container ")  # the legacy builder's own lines


def stdout() -> Console:
    # Piped output (CI logs) gets full-width rows instead of columns truncated to 80 characters.
    console = Console()
    return console if console.is_terminal else Console(width=400)


def yes(value: bool) -> str:
    return "yes" if value else "-"


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
