"""Example agent: importing this package registers DemoAgent (task type `flyte_agents_demo`)."""
from .agent import GREETING, TASK_TYPE, DemoAgent, DemoMetadata, DemoTask

__all__ = ["GREETING", "TASK_TYPE", "DemoAgent", "DemoMetadata", "DemoTask"]
