"""Option types shared by every command: click converts and checks them while it parses the command line, so a
bad value is one error line before any file is built or any connection is opened (main() prints click's errors
as `error: ...`, exit 2)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from ..errors import UserError

if TYPE_CHECKING:
    from ..flyte.versions import FlyteVersion

# Go's time.ParseDuration, which helm's --timeout uses: a sequence of decimal numbers with units, or 0.
_GO_DURATION = re.compile(r"0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a Kubernetes namespace
_VERSION = re.compile(r"v?\d+\.\d+(\.\d+)?(-[0-9A-Za-z.-]+)?")  # 1.16, 1.16.8, v1.16.0-b1


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not _GO_DURATION.fullmatch(str(value)):
            self.fail(f"{value!r} is not a duration: use a number with a unit, e.g. 5m, 90s or 1h30m", param, ctx)
        return str(value)


class Namespace(click.ParamType):
    name = "namespace"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not _DNS_LABEL.fullmatch(str(value)):
            self.fail(f"{value!r} is not a Kubernetes namespace: use at most 63 lowercase letters, digits and '-', "
                      "starting and ending with a letter or digit", param, ctx)
        return str(value)


class Seconds(click.ParamType):
    """A number of seconds above 0."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            self.fail(f"{value!r} is not a number of seconds above 0: use e.g. 120", param, ctx)
        return seconds


class Version(click.ParamType):
    """A Flyte version (1.13 up to 1.16.x), or None for `auto`."""

    name = "version"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> FlyteVersion | None:
        from ..flyte.versions import FlyteVersion

        if value is None or isinstance(value, FlyteVersion) or value == "auto":
            return value if value != "auto" else None
        if not _VERSION.fullmatch(str(value).strip()):
            self.fail(f"{value!r} is not a Flyte version: use e.g. 1.16 or 1.15.3", param, ctx)
        try:
            return FlyteVersion.parse(value)
        except UserError as err:
            self.fail(str(err), param, ctx)


DURATION = Duration()
NAMESPACE = Namespace()
SECONDS = Seconds()
VERSION = Version()


class Endpoint(click.ParamType):
    """HOST:PORT of a server."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        host, _, port = str(value).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            self.fail(f"{value!r} is not HOST:PORT: give e.g. localhost:8000", param, ctx)
        return str(value)


ENDPOINT = Endpoint()
