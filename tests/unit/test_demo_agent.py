"""The example agent in agent_image/flyte_agents_demo, run in-process with the project's flytekit.

The image test (tests/integration/test_agent_image.py) proves the entry point makes a real server list it.
"""
from __future__ import annotations

import asyncio
import sys
from collections import OrderedDict
from pathlib import Path

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.extend.backend.base_agent import AgentRegistry
from flytekit.tools.translator import get_serializable

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent_image" / "flyte_agents_demo"))
import flyte_agents_demo as demo  # noqa: E402 - importing registers the agent, as the entry point does


def template(seconds: float):
    task = demo.DemoTask(name="demo.wait", seconds=seconds)
    return get_serializable(OrderedDict(), SerializationSettings(ImageConfig.auto_default_image()), task).template


def test_task_type_is_served_by_the_registered_agent():
    # AgentRegistry (the pre-1.16 name) and ConnectorRegistry are one registry: both serve commands list it.
    assert isinstance(AgentRegistry.get_agent(demo.TASK_TYPE), demo.DemoAgent)
    assert template(0).type == demo.TASK_TYPE


def test_job_runs_until_its_deadline_and_metadata_survives_propeller():
    agent = AgentRegistry.get_agent(demo.TASK_TYPE)
    running = asyncio.run(agent.create(task_template=template(3600), output_prefix="/tmp/out"))
    # Propeller keeps the metadata as bytes between CreateTask and GetTask.
    assert demo.DemoMetadata.decode(running.encode()) == running
    assert asyncio.run(agent.get(running)).phase == TaskExecution.RUNNING

    done = asyncio.run(agent.create(task_template=template(0), output_prefix="/tmp/out"))
    assert asyncio.run(agent.get(done)).phase == TaskExecution.SUCCEEDED


def test_task_runs_locally_through_the_agent():
    assert demo.DemoTask(name="demo.now")().startswith(f"{demo.GREETING} from ")  # a failed job would raise
