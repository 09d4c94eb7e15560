"""Registry credentials come from the Docker config and its credential helpers, as `docker push` finds them.

A second real registry (the same Debian docker-registry binary as `make env` runs) with htpasswd auth, on a free
loopback port. The credential helper is a real program speaking the docker-credential-helpers protocol.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from .build_support import remove_images, run_cli, tiny  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker]

USER, PASSWORD = "fa-test", "fa-test-password"
# bcrypt of PASSWORD (the registry accepts only bcrypt in htpasswd files).
HTPASSWD = f"{USER}:$2y$04$W4OfSo/a5uJTJdKOrr3uie1bxYV99CDE7apPzQ3hdVPyvS6.Q2uWa\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except urllib.error.URLError:
        return 0  # not listening (yet)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory):
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (make env installs it)")
    root = tmp_path_factory.mktemp("auth-registry")
    (root / "htpasswd").write_text(HTPASSWD)
    host = f"127.0.0.1:{free_port()}"
    (root / "config.yml").write_text(
        f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: {host}}}\nauth: {{htpasswd: {{realm: fa-test, path: {root / 'htpasswd'}}}}}\n")
    with open(root / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while status(f"http://{host}/v2/") != 401:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"auth registry did not start: {(root / 'registry.log').read_text()[-2000:]}")
        time.sleep(0.1)
    yield host
    proc.terminate()
    proc.wait(10)


def docker_config(tmp_path, config: dict) -> dict[str, str]:
    directory = tmp_path / "docker-config"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return {"DOCKER_CONFIG": str(directory)}


def credential_helper(tmp_path) -> str:
    """A docker-credential-* program: `get` reads the server URL on stdin and prints the credentials."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fa-test"
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n"
                      f"echo \"$server\" >> {tmp_path / 'helper-calls'}\n"
                      f"printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' "
                      f"\"$server\"\n")
    helper.chmod(0o755)
    return str(bin_dir)


def build_push(tiny, host: str, env: dict):
    return run_cli("build", str(tiny), "--name", "fa-test/tiny", "--registry", host, "--push", "-o", "json",
                   env=env)


def test_without_credentials_the_error_says_to_log_in(tiny, tmp_path, auth_registry):
    run = build_push(tiny, auth_registry, docker_config(tmp_path, {}))
    assert run.code == 5, run.stderr
    assert f"docker login {auth_registry}" in run.error


@pytest.mark.parametrize("source", ["auths", "credHelpers"])
def test_credentials_from_the_docker_config_push_and_stay_secret(source, tiny, tmp_path, auth_registry,
                                                                 docker_client):
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if source == "auths":
        env = docker_config(tmp_path, {"auths": {auth_registry: {"auth": token}}})
    else:
        env = docker_config(tmp_path, {"credHelpers": {auth_registry: "fa-test"}})
        env["PATH"] = credential_helper(tmp_path) + os.pathsep + os.environ["PATH"]
    try:
        run = build_push(tiny, auth_registry, env)
    finally:
        remove_images(docker_client, f"{auth_registry}/fa-test/tiny")
    assert run.code == 0, run.stderr
    (image,) = run.json["images"]
    assert PASSWORD not in run.stdout + run.stderr
    tags_url = f"http://{auth_registry}/v2/fa-test/tiny/tags/list"
    assert status(tags_url) == 401 and status(tags_url, token) == 200
    if source == "credHelpers":
        assert auth_registry in (tmp_path / "helper-calls").read_text()
