"""flyte-agents: take a Flyte agent (connector) service from source to serving tasks."""

__version__ = "0.1.0"
