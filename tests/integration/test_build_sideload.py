"""Side-loading into the sandbox's containerd (`docker save` | `ctr -n k8s.io images import`), against a real
containerd.

The real Flyte sandbox is a container named flyte-sandbox running k3s (containerd inside). Here a container of the
same shape stands in: the base image running the host's Debian containerd, with `ctr` on PATH. It needs
CAP_SYS_ADMIN to mount layers when unpacking, as the (privileged) sandbox has; the second one lacks it, so
unpacking fails for real and the error must reach the user.
"""
from __future__ import annotations

import shutil
import time
import uuid

import pytest

from flyte_agents.imageref import normalize_ref

from .build_support import repository, run_cli, tiny  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.docker]


def start_containerd(docker_client, base_image, privileged: bool):
    binaries = {name: shutil.which(name) for name in ("containerd", "ctr")}
    if not all(binaries.values()):
        pytest.skip("containerd and ctr are not installed on the host (Debian package containerd)")
    extra = {"cap_add": ["SYS_ADMIN"], "security_opt": ["apparmor=unconfined", "seccomp=unconfined"]} \
        if privileged else {}
    container = docker_client.containers.run(
        base_image, ["containerd"], detach=True, name=f"fa-test-sandbox-{uuid.uuid4().hex[:8]}",
        environment={"CONTAINERD_SNAPSHOTTER": "native"},  # what this nested containerd can use
        volumes={path: {"bind": f"/usr/local/bin/{name}", "mode": "ro"} for name, path in binaries.items()},
        **extra)
    deadline = time.monotonic() + 60
    while container.exec_run(["ctr", "version"]).exit_code != 0:
        if time.monotonic() > deadline:
            container.remove(force=True)
            pytest.fail(f"containerd did not start: {container.logs()[-2000:]!r}")
        time.sleep(0.3)
    return container


@pytest.fixture(scope="module")
def sandbox_containerd(docker_client, base_image):
    container = start_containerd(docker_client, base_image, privileged=True)
    yield container
    container.remove(force=True)


def ctr_images(container) -> list[str]:
    result = container.exec_run(["ctr", "-n", "k8s.io", "images", "ls", "-q"])
    assert result.exit_code == 0, result.output
    return result.output.decode().split()


def test_side_load_imports_verifies_and_then_skips(tiny, repository, sandbox_containerd):
    registry, name = repository.split("/", 1)
    args = ["build", str(tiny), "--name", name, "--registry", registry, "--side-load", "--sandbox-container",
            sandbox_containerd.name, "-o", "json"]
    first = run_cli(*args)
    assert first.code == 0, first.stderr
    (image,) = first.json["images"]
    assert (image["side_loaded"], image["pushed"]) == (True, False)
    loaded = ctr_images(sandbox_containerd)
    assert normalize_ref(image["ref"]) in loaded
    assert image["image_id"] in loaded  # the CRI plugin names each image by its config digest, the Docker image ID

    again = run_cli(*args)
    assert again.code == 0, again.stderr
    assert (again.json["builds"], again.json["side_loads"]) == (0, 0)
    assert "side-load skipped" in again.stderr


def test_an_unpack_failure_inside_the_sandbox_fails_the_command(tiny, repository, docker_client, base_image):
    container = start_containerd(docker_client, base_image, privileged=False)
    try:
        registry, name = repository.split("/", 1)
        run = run_cli("build", str(tiny), "--name", name, "--registry", registry, "--side-load",
                      "--sandbox-container", container.name)
    finally:
        container.remove(force=True)
    assert run.code == 3, run.stderr
    assert run.error.startswith(f"error: ctr import into {container.name} failed") and "Traceback" not in run.stderr


def test_a_missing_sandbox_container_is_reported_before_building(tiny, repository, docker_client):
    registry, name = repository.split("/", 1)
    run = run_cli("build", str(tiny), "--name", name, "--registry", registry, "--side-load",
                  "--sandbox-container", f"fa-test-absent-{uuid.uuid4().hex[:6]}")
    assert run.code == 3 and "is not running" in run.error and "--sandbox-container" in run.error
    assert docker_client.images.list(name=repository) == []
