"""Thin adapter over the Docker Engine API (the docker SDK's low-level APIClient).

It turns the Engine's streams into typed events and its failures into the toolkit's errors. The Engine reports a
failed build step or push *inside* an HTTP 200 stream, so every stream is read to the end and any error chunk
fails the call (the SDK's high-level push returns success for a failed push).
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator

import docker
import docker.errors
import requests.exceptions
from docker.utils.socket import frames_iter

from ..errors import BuildStepFailed, DockerUnavailable, DockerfileError, InfraError, RegistryError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]+)$")
# Push errors worth another attempt: server-side 5xx/429, timeouts, dropped connections. Refused connections,
# unknown hosts and auth errors are not: retrying cannot fix them.
_TRANSIENT = re.compile(r"\b(50[0234]|429)\b|timeout|timed out|connection reset|broken pipe|\bEOF\b|"
                        r"service unavailable|bad gateway|too many requests", re.IGNORECASE)


@dataclass(frozen=True)
class BuildStep:
    number: int
    total: int
    instruction: str


@dataclass(frozen=True)
class BuildOutput:
    line: str


@dataclass(frozen=True)
class StepFailed:
    """Sent just before BuildStepFailed is raised, so a reporter can show the step's output."""

    step: BuildStep | None
    message: str


@dataclass(frozen=True)
class PushProgress:
    layer: str
    status: str
    current: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


Event = BuildStep | BuildOutput | StepFailed | PushProgress
OnEvent = Callable[[Event], None]


class PushFailed(RegistryError):
    """The Engine's push stream ended in an error chunk."""

    def __init__(self, message: str):
        super().__init__(message)
        self.transient = bool(_TRANSIENT.search(message))


def one_line(text: str) -> str:
    return " ".join(_ANSI.sub("", text).split())


def _reason(err: Exception) -> str:
    """The gist of a connection failure buried in the SDK's nested exception text."""
    text = str(err)
    for marker, reason in (("No such file or directory", "no such socket"), ("Connection refused", "connection "
                           "refused"), ("Permission denied", "permission denied"), ("timed out", "timed out")):
        if marker.lower() in text.lower():
            return reason
    return one_line(text)[-160:]


class DockerEngine:
    def __init__(self, api: docker.APIClient):
        self.api = api

    @classmethod
    def connect(cls, timeout: int = 600) -> "DockerEngine":
        """The Engine named by DOCKER_HOST / the Docker CLI context, answering a ping."""
        where = os.environ.get("DOCKER_HOST") or "the default socket or Docker context"
        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
            raise DockerUnavailable(f"Docker Engine unreachable at {where} ({_reason(err)}): start Docker or point "
                                    f"DOCKER_HOST at a running Engine") from None
        return cls(client.api)

    def _unreachable(self, err: Exception) -> DockerUnavailable:
        return DockerUnavailable(f"lost the Docker Engine at {self.api.base_url} ({_reason(err)}): check that it "
                                 f"is running")

    # -------------------------------------------------------------------------------------------- images

    def image(self, ref: str) -> dict | None:
        """`docker image inspect` of ref, or None when the Engine has no such image."""
        try:
            return self.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except requests.exceptions.ConnectionError as err:
            raise self._unreachable(err) from None

    def remove_image(self, ref: str) -> None:
        try:
            self.api.remove_image(ref)
        except docker.errors.ImageNotFound:
            pass

    def build(self, context: BinaryIO, *, dockerfile: str, tag: str, on_event: OnEvent,
              build_args: dict[str, str] | None = None, target: str | None = None,
              platform: str | None = None, network_mode: str | None = None) -> str:
        """Build from an uncompressed context tar and tag the result; returns the image ID."""
        try:
            stream = self.api.build(fileobj=context, custom_context=True, dockerfile=dockerfile, tag=tag,
                                    buildargs=build_args or {}, target=target,
                                    platform=platform, network_mode=network_mode, rm=True, forcerm=True,
                                    decode=True, use_config_proxy=False)
            return _read_build(stream, on_event)
        except docker.errors.APIError as err:
            # Parse errors, unknown instructions and missing targets are refused before the build starts.
            if err.status_code == 400:
                raise DockerfileError(one_line(err.explanation or str(err))) from None
            raise BuildStepFailed(f"the Engine refused the build: {one_line(err.explanation or str(err))}") from None
        except requests.exceptions.ConnectionError as err:
            raise self._unreachable(err) from None

    def push(self, repository: str, tag: str, on_event: OnEvent) -> str:
        """Push repository:tag with credentials from the Docker config; returns the manifest digest."""
        try:
            stream = self.api.push(repository, tag=tag, stream=True, decode=True)
            return _read_push(stream, on_event, f"{repository}:{tag}")
        except docker.errors.APIError as err:
            raise PushFailed(f"push of {repository}:{tag} refused: {one_line(err.explanation or str(err))}") from None
        except requests.exceptions.ConnectionError as err:
            raise self._unreachable(err) from None

    def save(self, ref: str) -> Iterator[bytes]:
        """`docker save ref` as a stream: by name, so the importer learns the tag."""
        try:
            return self.api.get_image(ref, chunk_size=1 << 20)
        except docker.errors.APIError as err:
            raise InfraError(f"docker save {ref} failed: {one_line(err.explanation or str(err))}") from None

    # -------------------------------------------------------------------------------------------- containers

    def container_running(self, name: str) -> bool:
        try:
            return bool(self.api.inspect_container(name)["State"]["Running"])
        except docker.errors.NotFound:
            return False

    def exec(self, container: str, cmd: list[str], stdin: Iterable[bytes] | None = None) -> ExecResult:
        """Run cmd in a running container, streaming `stdin` into it; returns exit code and combined output."""
        try:
            exec_id = self.api.exec_create(container, cmd, stdin=stdin is not None)["Id"]
            if stdin is None:
                output = self.api.exec_start(exec_id)
            else:
                output = self._exec_with_stdin(exec_id, stdin)
            exit_code = self.api.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.APIError as err:
            raise InfraError(f"docker exec in {container} failed: {one_line(err.explanation or str(err))}") from None
        except requests.exceptions.ConnectionError as err:
            raise self._unreachable(err) from None
        return ExecResult(exit_code, output.decode(errors="replace"))

    def _exec_with_stdin(self, exec_id: str, stdin: Iterable[bytes]) -> bytes:
        raw = self.api.exec_start(exec_id, socket=True)
        # The SDK has no stdin API: writing to the hijacked connection's socket and half-closing it (EOF on the
        # process's stdin) is the SDK's documented attach_socket idiom.
        sock = getattr(raw, "_sock", raw)
        try:
            for chunk in stdin:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
            return b"".join(data for _stream, data in frames_iter(raw, tty=False))
        finally:
            raw.close()


def _read_build(stream: Iterable[dict], on_event: OnEvent) -> str:
    image_id, step, pending = None, None, ""
    for chunk in stream:
        if "error" in chunk or "errorDetail" in chunk:
            message = one_line((chunk.get("errorDetail") or {}).get("message") or chunk.get("error") or "")
            on_event(StepFailed(step, message))
            raise _step_error(step, message)
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        pending += _ANSI.sub("", chunk.get("stream", ""))
        *lines, pending = pending.split("\n")
        for line in lines:
            step = _emit_line(line.rstrip("\r"), step, on_event)
            built = _BUILT.match(line)
            image_id = image_id or (built and built.group(1))
    if pending:
        _emit_line(pending, step, on_event)
    if not image_id:
        raise BuildStepFailed("the build ended without an image ID: see the output above")
    return image_id


def _emit_line(line: str, step: BuildStep | None, on_event: OnEvent) -> BuildStep | None:
    match = _STEP.match(line)
    if match:
        step = BuildStep(int(match.group(1)), int(match.group(2)), match.group(3))
        on_event(step)
    elif line:
        on_event(BuildOutput(line))
    return step


def _step_error(step: BuildStep | None, message: str) -> Exception:
    where = f"step {step.number}/{step.total} `{step.instruction[:80]}`" if step else "the build"
    instruction = step.instruction.split()[0].upper() if step and step.instruction.split() else ""
    # A COPY/ADD that fails names a file the context does not have: the Dockerfile or .dockerignore needs fixing.
    if instruction in ("COPY", "ADD"):
        return DockerfileError(f"{where}: {message}")
    return BuildStepFailed(f"{where} failed: {message}")


def _read_push(stream: Iterable[dict], on_event: OnEvent, ref: str) -> str:
    digest = None
    for chunk in stream:
        if "error" in chunk or "errorDetail" in chunk:
            message = one_line((chunk.get("errorDetail") or {}).get("message") or chunk.get("error") or "")
            raise PushFailed(f"push of {ref} failed: {message}")
        if "aux" in chunk and "Digest" in chunk["aux"]:
            digest = chunk["aux"]["Digest"]
        elif "status" in chunk and "id" in chunk:
            detail = chunk.get("progressDetail") or {}
            on_event(PushProgress(chunk["id"], chunk["status"], detail.get("current"), detail.get("total")))
    if not digest:
        raise PushFailed(f"push of {ref} ended without a manifest digest")
    return digest
