"""The Go agent server (tests/servers/goagent), which passes `flyte-agents conformance`, also runs tasks of its own
types through the real flytepropeller of the sandbox stand-in: propeller discovers them with ListAgents, calls
CreateTask/GetTask for go_echo and ExecuteTaskSync for go_echo_sync, and the echoed outputs come back."""
from __future__ import annotations

import pytest
import yaml
from kubernetes import client

from tests.integration.build_support import run_cli
from tests.integration.test_propeller_executions import NS, stand  # noqa: F401 (fixture)
from tests.servers.goagent import ASYNC_TYPE, SYNC_TYPE, goagent_binary, serve  # noqa: F401 (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.kube, pytest.mark.sandbox, pytest.mark.timeout(2400)]

CONFIG_KEY = "zz-conformance-goagent.yaml"


def echo_task(task_type: str):
    """A task of the Go server's type: no code of its own, the server echoes input x back as output x."""
    from flytekit.core.base_task import PythonTask
    from flytekit.core.interface import Interface

    return PythonTask(task_type=task_type, name=f"conformance.{task_type}", task_config=None,
                      interface=Interface(inputs={"x": int}, outputs={"x": int}))


@pytest.mark.parametrize("sandbox", ["1.16"], indirect=True)
def test_tasks_of_the_go_servers_types_run_on_it_through_propeller(stand, goagent_binary, kube_api):
    core = client.CoreV1Api(kube_api)
    with serve(goagent_binary) as agent:
        assert run_cli("conformance", "--endpoint", agent.address).code == 0
        # propeller (a process on this machine, like the server) gets the server as a connector deployment and
        # learns its task types from ListAgents, as it would for any language
        endpoint = f"dns:///{agent.address}"
        routing = {"plugins": {"connector-service": {"connectors": {"goagent": {"endpoint": endpoint,
                                                                               "insecure": True}}}}}
        core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS,
                                         {"data": {CONFIG_KEY: yaml.safe_dump(routing)}})
        try:
            seen = len(stand.processes())
            stand.restart_propeller()
            process = stand.wait_new_process(seen)
            stand.wait_discovery(process, {endpoint: {ASYNC_TYPE, SYNC_TYPE}})
            for task_type, call, x in ((ASYNC_TYPE, "CreateTask", 7), (SYNC_TYPE, "ExecuteTaskSync", 8)):
                execution = stand.propeller.run(echo_task(task_type), {"x": x})
                print(f"one execution of {task_type} on the Go server: {execution.seconds:.1f}s")
                assert execution.phase == "SUCCEEDED", execution.message
                assert execution.outputs == {"x": x}
                assert f"{call} {task_type} conformance.{task_type}: 1 inputs" in agent.log_text()
        finally:
            core.patch_namespaced_config_map("flyte-sandbox-extra-config", NS, [
                {"op": "remove", "path": f"/data/{CONFIG_KEY}"}])
