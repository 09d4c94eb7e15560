"""An async agent that "runs a job" for a given number of seconds, like a remote query service would.

The job's output names the server that took the CreateTask (its hostname: the pod's name in Kubernetes) and says
GREETING: change GREETING, redeploy, and the next execution returns the new text. The server also logs one line per
CreateTask, so its own log shows which jobs it ran.

flytekit 1.16 renamed agents to connectors (base_connector, ConnectorRegistry) and kept base_agent as aliases of
the same classes; flytekit <= 1.15 only has base_agent. Registering through whichever module exists puts the agent
into the one registry that both `pyflyte serve agent` and `pyflyte serve connector` list.
"""
from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass
from typing import Optional

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.configuration import SerializationSettings
from flytekit.core.base_task import PythonTask
from flytekit.core.interface import Interface
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskTemplate

try:  # flytekit >= 1.16
    from flytekit.extend.backend.base_connector import AsyncConnectorBase as AsyncBase
    from flytekit.extend.backend.base_connector import AsyncConnectorExecutorMixin as AsyncExecutorMixin
    from flytekit.extend.backend.base_connector import ConnectorRegistry as Registry
    from flytekit.extend.backend.base_connector import Resource, ResourceMeta
except ImportError:  # flytekit <= 1.15
    from flytekit.extend.backend.base_agent import AgentRegistry as Registry
    from flytekit.extend.backend.base_agent import AsyncAgentBase as AsyncBase
    from flytekit.extend.backend.base_agent import AsyncAgentExecutorMixin as AsyncExecutorMixin
    from flytekit.extend.backend.base_agent import Resource, ResourceMeta

TASK_TYPE = "flyte_agents_demo"
GREETING = "hello"


@dataclass
class DemoMetadata(ResourceMeta):
    """What propeller stores between CreateTask and GetTask: enough to find the job again."""

    job_id: str
    done_at: float
    server: str


class DemoAgent(AsyncBase):
    name = "Flyte Agents Demo"

    def __init__(self):
        super().__init__(task_type_name=TASK_TYPE, metadata_type=DemoMetadata)

    async def create(self, task_template: TaskTemplate, inputs: Optional[LiteralMap] = None, **kwargs) -> DemoMetadata:
        seconds = float((task_template.custom or {}).get("seconds", 0))
        job = DemoMetadata(job_id=f"demo-{time.time_ns()}", done_at=time.time() + seconds, server=socket.gethostname())
        # flytekit's server logs nothing per request at its default level: this line is the server's own record.
        print(f"{TASK_TYPE}: CreateTask {task_template.id.name} -> job {job.job_id} on {job.server}", file=sys.stderr,
              flush=True)
        return job

    async def get(self, resource_meta: DemoMetadata, **kwargs) -> Resource:
        if time.time() < resource_meta.done_at:
            return Resource(phase=TaskExecution.RUNNING, message=f"{resource_meta.job_id} running")
        return Resource(phase=TaskExecution.SUCCEEDED, message=f"{resource_meta.job_id} done",
                        outputs={"greeting": f"{GREETING} from {resource_meta.server} ({resource_meta.job_id})"})

    async def delete(self, resource_meta: DemoMetadata, **kwargs) -> None:
        return None  # nothing to cancel: the "job" is a deadline


class DemoTask(AsyncExecutorMixin, PythonTask):
    """A task of type flyte_agents_demo: propeller hands it to DemoAgent (locally, the mixin calls it in-process).
    Its one output, `greeting`, is a str."""

    def __init__(self, name: str, seconds: float = 0, **kwargs):
        interface = Interface(outputs={"greeting": str})
        super().__init__(task_type=TASK_TYPE, name=name, task_config=None, interface=interface, **kwargs)
        self._seconds = seconds

    def get_custom(self, settings: SerializationSettings) -> dict:
        return {"seconds": self._seconds}


Registry.register(DemoAgent())
