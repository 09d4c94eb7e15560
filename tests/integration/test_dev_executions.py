"""`flyte-agents dev --sandbox` proven by executions on the stand-in's real flytepropeller (1.15 and 1.16 naming).

An execution of flyte_agents_demo runs on the local server (its own log line names the job), a save changes the
next execution's output without a new propeller process, and after Ctrl-C the routing is back byte for byte and
the demo task type no longer reaches this machine. No fakes.
"""
from __future__ import annotations

import signal
import socket
import sys

import pytest
from kubernetes import client

from tests.integration.dev_support import Dev, edit, project_copy
from tests.integration.test_dev import NAME, Cluster, helm
from tests.integration.test_propeller_executions import NS, demo_task, stand  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.kube, pytest.mark.sandbox, pytest.mark.helm, pytest.mark.agent,
              pytest.mark.timeout(3600)]  # the first one may wait long for the stand-in's lock

DEMO = "flyte_agents_demo"


@pytest.mark.parametrize("sandbox", ["1.15", "1.16"], indirect=True)
def test_executions_run_on_the_local_server_and_follow_every_save(stand, kube_api, tmp_path):
    cluster = Cluster(client.CoreV1Api(kube_api), client.CoordinationV1Api(kube_api), NS, "flyte-sandbox-extra-config")
    project, agent_py = project_copy(tmp_path)
    before = cluster.config_map()
    seen = len(stand.processes())
    dev = Dev("--sandbox", "--project", str(project), "--python", sys.executable, "--helm", helm())
    try:
        log = dev.wait_for(r"^server: pyflyte serve \w+ --port \d+; log: (\S+)$").group(1)
        port = dev.serving().group(3)
        dev.wait_for("^routing: ")
        process = stand.wait_new_process(seen)  # the one restart of this dev run
        stand.wait_discovery(process, {f"k8s://{NAME}.{NS}:{port}": {DEMO, "sensor", "webhook"}})

        first = stand.propeller.run(demo_task())
        assert first.phase == "SUCCEEDED", first.message
        greeting = first.outputs["greeting"]
        assert greeting.startswith(f"hello from {socket.gethostname()} ("), greeting
        job = greeting.rsplit("(", 1)[1].rstrip(")")
        assert f"CreateTask demo.greet -> job {job} on {socket.gethostname()}" in open(log).read()

        edit(agent_py, 'GREETING = "hello"', 'GREETING = "hello from dev"')
        assert dev.serving().group(1) == "reload 1"
        again = stand.propeller.run(demo_task())
        assert again.phase == "SUCCEEDED", again.message
        assert again.outputs["greeting"].startswith("hello from dev from "), again.outputs
        assert len(stand.processes()) == seen + 1 and process.popen.poll() is None  # propeller untouched
    finally:
        code = dev.stop(signal.SIGINT)
    assert code == 0, dev.text()
    assert cluster.config_map() == before and cluster.dev_objects() == []
    restored = stand.wait_new_process(seen + 1)
    stand.wait_discovery(restored, {f"k8s://{stand.builtin}.flyte:8000": {"sensor", "webhook"}})
    orphan = stand.propeller.run(demo_task(), timeout=60)
    assert orphan.phase != "SUCCEEDED", orphan
