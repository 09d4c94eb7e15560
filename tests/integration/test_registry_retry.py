"""Bounded retries on transient registry failures.

The real registry cannot produce a transient 503 on demand, so these tests put a loopback proxy in front of it
that answers 503 to chosen requests and forwards everything else unchanged: the one fake in the image pipeline's
tests, and only for the fault. The Docker Engine pushes through the proxy for real (it treats 127.0.0.0/8 as an
insecure registry, as it does the real one).
"""
from __future__ import annotations

import http.client
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flyte_agents.adapters.docker import DockerEngine
from flyte_agents.adapters.registry import RegistryClient, Retry
from flyte_agents.errors import RegistryError
from flyte_agents.workflows import images

from .build_support import remove_images, tiny  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.registry]


class FlakyRegistry(ThreadingHTTPServer):
    """Forwards to `upstream`; answers 503 to the first `failures` requests that `matches`."""

    daemon_threads = True

    def __init__(self, upstream: str, matches, failures: int):
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream, self.matches, self.failures = upstream, matches, failures
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def should_fail(self, method: str, path: str) -> bool:
        with self.lock:
            self.seen.append((method, path))
            if self.matches(method, path) and self.failures > 0:
                self.failures -= 1
                return True
        return False


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            data += self.rfile.read(size + 2)[:size]  # every chunk, the last (empty) one too, ends with CRLF
            if size == 0:
                return data

    def _forward(self) -> None:
        body = self._body()
        if self.server.should_fail(self.command, self.path):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("transfer-encoding", "content-length", "connection")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        length = response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward


@pytest.fixture
def flaky(registry):
    servers = []

    def start(matches, failures: int) -> FlakyRegistry:
        server = FlakyRegistry(registry, matches, failures)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def manifest_put(method: str, path: str) -> bool:
    return method == "PUT" and "/manifests/" in path


def test_a_transient_push_failure_is_retried_and_the_pushed_digest_verified(flaky, tiny, registry, docker_client):
    proxy = flaky(manifest_put, failures=1)
    path = f"fa-test-{uuid.uuid4().hex[:10]}/tiny"
    repository = f"{proxy.host}/{path}"
    sleeps: list[float] = []
    options = images.Options(push=True, retry=Retry(attempts=3, backoff=0.01, sleep=sleeps.append))
    events = []
    docker = DockerEngine.connect()
    try:
        result = images.apply(images.plan([images.ImageSpec(tiny, repository)], options, docker), docker,
                              events.append)
    finally:
        remove_images(docker_client, repository)
    (image,) = result.images
    retries = [e for e in events if isinstance(e, images.Stage) and e.state == "retry"]
    assert len(retries) == 1 and "503" in retries[0].detail
    assert sleeps == [0.01]
    assert sum(manifest_put(*request) for request in proxy.seen) == 2
    real = RegistryClient(registry)
    assert image.pushed and real.manifest_digest(path, image.tag) == image.digest


def test_registry_lookups_retry_a_bounded_number_of_times(flaky, registry):
    def manifest_head(method, path):
        return method == "HEAD" and "/manifests/" in path

    recovering = flaky(manifest_head, failures=2)
    sleeps: list[float] = []
    client = RegistryClient(recovering.host, retry=Retry(attempts=3, backoff=0.25, sleep=sleeps.append))
    assert client.manifest_digest("fa-test-absent/x", "t") is None  # answered after two 503s
    assert sleeps == [0.25, 0.5]

    down = flaky(manifest_head, failures=100)
    client = RegistryClient(down.host, retry=Retry(attempts=3, backoff=0.25, sleep=sleeps.append))
    with pytest.raises(RegistryError, match="answered HTTP 503"):
        client.manifest_digest("fa-test-absent/x", "t")
    assert sum(manifest_head(*request) for request in down.seen) == 3
