"""Thin client for the OCI distribution (registry HTTP API v2) endpoints the pipeline needs.

`manifest_digest` answers "does the registry already have repo:tag?" (so unchanged images are not pushed) and
`tags` lists a repository. Credentials come from the Docker config and its credential helpers, exactly as the
Docker CLI finds them; they are sent only to the registry's own token endpoint and never logged. Loopback
registries (the Flyte sandbox's localhost:30000) speak plain HTTP, as dockerd assumes for 127.0.0.0/8.
"""
from __future__ import annotations

import base64
import ipaddress
import re
import time
from dataclasses import dataclass
from typing import Callable

import docker.auth
import docker.errors
import requests

from ..errors import RegistryError
from ..imageref import DOCKER_HUB, split_registry

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
RETRY_STATUSES = {429, 500, 502, 503, 504}


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Retry:
    """Bounded retries with exponential backoff for transient failures."""

    attempts: int = 3
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def delays(self):
        return [self.backoff * 2 ** i for i in range(self.attempts - 1)]


class RegistryClient:
    """One registry host; repository paths are given without the host (`fa/agent`, not `host/fa/agent`)."""

    def __init__(self, host: str, timeout: float = 10, retry: Retry = Retry()):
        self.host = host
        self.api_host = "registry-1.docker.io" if host == DOCKER_HUB else host
        self.base = f"{'http' if is_loopback(host) else 'https'}://{self.api_host}"
        self.timeout = timeout
        self.retry = retry
        self.session = requests.Session()
        self._tokens: dict[str, str] = {}

    @classmethod
    def for_repository(cls, repository: str, **kw) -> tuple["RegistryClient", str]:
        """A client for the host of `repository` (`localhost:30000/fa/agent`) and the path on that host."""
        host, path = split_registry(repository)
        if host == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        return cls(host, **kw), path

    def manifest_digest(self, path: str, tag: str) -> str | None:
        """The manifest digest of path:tag, or None if the registry does not have it."""
        response = self._request("HEAD", f"/v2/{path}/manifests/{tag}", path, headers={"Accept": MANIFEST_TYPES})
        if response.status_code == 404:
            return None
        self._check(response, f"{path}:{tag}")
        return response.headers.get("Docker-Content-Digest")

    def tags(self, path: str) -> list[str]:
        response = self._request("GET", f"/v2/{path}/tags/list", path)
        if response.status_code == 404:
            return []
        self._check(response, path)
        return response.json().get("tags") or []

    # -------------------------------------------------------------------------------------------- HTTP

    def _request(self, method: str, url_path: str, repo_path: str, headers: dict | None = None):
        headers = dict(headers or {})
        response = self._send(method, url_path, headers, repo_path)
        if response.status_code == 401:
            auth = self._authorization(response.headers.get("WWW-Authenticate", ""), repo_path)
            if auth:
                response = self._send(method, url_path, {**headers, "Authorization": auth}, repo_path)
        return response

    def _send(self, method: str, url_path: str, headers: dict, repo_path: str):
        if repo_path in self._tokens and "Authorization" not in headers:
            headers["Authorization"] = self._tokens[repo_path]
        delays = iter(self.retry.delays())
        while True:
            try:
                response = self.session.request(method, self.base + url_path, headers=headers,
                                                timeout=self.timeout, allow_redirects=True)
            except requests.exceptions.ConnectionError as err:
                delay = next(delays, None)
                if delay is None or _refused(err):
                    raise RegistryError(f"registry {self.host} is unreachable ({_reason(err)}): start it or fix "
                                        f"--registry") from None
            except requests.exceptions.Timeout:
                delay = next(delays, None)
                if delay is None:
                    raise RegistryError(f"registry {self.host} did not answer within {self.timeout:.0f}s: "
                                        f"check the registry or your network") from None
            else:
                delay = next(delays, None) if response.status_code in RETRY_STATUSES else None
                if delay is None:
                    return response
            self.retry.sleep(delay)

    def _check(self, response, what: str) -> None:
        if response.status_code in (401, 403):
            raise RegistryError(f"registry {self.host} denied access to {what} (HTTP {response.status_code}): "
                                f"run `docker login {self.host}`")
        if response.status_code >= 300:
            raise RegistryError(f"registry {self.host} answered HTTP {response.status_code} for {what}: "
                                f"check the registry's health")

    # -------------------------------------------------------------------------------------------- auth

    def _authorization(self, challenge: str, repo_path: str) -> str | None:
        """The Authorization header answering a 401 challenge (Basic, or a Bearer token for the repository)."""
        scheme, _, params = challenge.partition(" ")
        credentials = self._credentials()
        if scheme.lower() == "basic":
            if credentials and credentials[0]:
                return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
            return None
        if scheme.lower() != "bearer":
            return None
        fields = _challenge_fields(params)
        token = self._bearer_token(fields, credentials, repo_path)
        self._tokens[repo_path] = f"Bearer {token}"
        return self._tokens[repo_path]

    def _bearer_token(self, fields: dict[str, str], credentials, repo_path: str) -> str:
        query = {"service": fields.get("service", ""), "scope": fields.get("scope") or
                 f"repository:{repo_path}:pull"}
        if credentials and not credentials[0]:  # an identity token is an OAuth2 refresh token
            response = self.session.post(fields["realm"], data={**query, "grant_type": "refresh_token",
                                         "client_id": "flyte-agents", "refresh_token": credentials[1]},
                                         timeout=self.timeout)
        else:
            response = self.session.get(fields["realm"], params=query, timeout=self.timeout,
                                        auth=credentials if credentials else None)
        if response.status_code >= 300:
            raise RegistryError(f"registry {self.host} refused a token (HTTP {response.status_code}): "
                                f"run `docker login {self.host}`")
        body = response.json()
        return body.get("token") or body.get("access_token")

    def _credentials(self) -> tuple[str, str] | None:
        """(username, secret) from the Docker config / credential helper; username '' for an identity token."""
        try:
            config = docker.auth.load_config().resolve_authconfig(self.host)
        except docker.errors.DockerException as err:
            raise RegistryError(f"credential helper for {self.host} failed ({_reason(err)}): run "
                                f"`docker login {self.host}`") from None
        if not config:
            return None
        token = config.get("IdentityToken") or config.get("identitytoken")
        if token:
            return "", token
        username = config.get("username") or config.get("Username")
        password = config.get("password") or config.get("Password")
        return (username, password) if username else None


def _challenge_fields(params: str) -> dict[str, str]:
    """`realm="…",service="…",scope="repository:a:pull,push"` -> dict (values may hold commas)."""
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def _refused(err: Exception) -> bool:
    text = str(err).lower()
    return "refused" in text or "name or service not known" in text or "nodename nor servname" in text


def _reason(err: Exception) -> str:
    text = str(err)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset"):
        if marker.lower() in text.lower():
            return marker.lower()
    return " ".join(text.split())[:160]
