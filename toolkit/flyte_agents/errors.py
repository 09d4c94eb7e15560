"""Errors the CLI turns into one line and an exit code (no traceback unless --debug).

Every error message is one line: what is wrong and what to do. Exit codes tell CI what failed:

    1  unexpected bug                    7  an image build step failed
    2  bad input (nothing was changed)   8  Kubernetes API unreachable or refused the request
    3  other infrastructure failure      9  helm failed
    4  Docker Engine unreachable        10  a rollout did not become ready
    5  registry unreachable or refused  11  verification failed (health, ListAgents, routing)
    6  Dockerfile invalid               12  a concurrent writer kept winning (retries exhausted)
   13  agent endpoint unreachable       14  the endpoint is not a gRPC server
   15  TLS mismatch (TLS on a plaintext port, or plaintext to a TLS port)
   16  conformance: a check failed      17  config lint: a finding at or above --fail-on
  130  interrupted (Ctrl-C), after rolling back what was changed
"""
from __future__ import annotations


class FlyteAgentsError(Exception):
    """Base class: `str(err)` is the whole one-line message, `exit_code` the process exit status."""

    exit_code = 1


class UserError(FlyteAgentsError):
    """Bad input: the message names the field and the fix. Nothing was changed."""

    exit_code = 2


class InfraError(FlyteAgentsError):
    """A component (Docker, registry, helm, Kubernetes, agent server) failed or is unreachable."""

    exit_code = 3


class DockerUnavailable(InfraError):
    exit_code = 4


class RegistryError(InfraError):
    exit_code = 5


class DockerfileError(UserError):
    exit_code = 6


class BuildStepFailed(InfraError):
    exit_code = 7


class KubernetesError(InfraError):
    exit_code = 8


class HelmError(InfraError):
    exit_code = 9


class RolloutTimeout(InfraError):
    exit_code = 10


class VerificationFailed(FlyteAgentsError):
    exit_code = 11


class ConflictError(InfraError):
    exit_code = 12


class EndpointUnreachable(InfraError):
    exit_code = 13


class NotGrpcEndpoint(InfraError):
    exit_code = 14


class TlsMismatch(InfraError):
    exit_code = 15


class ConformanceFailed(FlyteAgentsError):
    exit_code = 16


class LintFailed(FlyteAgentsError):
    exit_code = 17


class Interrupted(FlyteAgentsError):
    exit_code = 130
