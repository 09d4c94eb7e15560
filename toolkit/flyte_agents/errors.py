"""Errors the CLI turns into one line and an exit code (no traceback unless --debug).

Exit codes: 1 unexpected bug, 2 user error (bad input: fix the named field), 3+ infrastructure failures, one per
component, so CI can tell "your config is wrong" from "the registry is down".
"""
from __future__ import annotations


class FlyteAgentsError(Exception):
    """Base class: `str(err)` is the whole one-line message, `exit_code` the process exit status."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UserError(FlyteAgentsError):
    """Bad input: names the field and the fix. Nothing was changed."""

    exit_code = 2


class InfraError(FlyteAgentsError):
    """A component (Docker, registry, helm, Kubernetes, agent server) failed or is unreachable."""

    exit_code = 3
