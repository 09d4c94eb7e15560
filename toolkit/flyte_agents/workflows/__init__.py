"""Workflows (images, routing, deploy, sandbox detection, the project file) that compose the adapters with the pure
flyte/ core; they may import both, never the CLI."""
