"""Thin I/O adapters over Docker, the registry, helm, the Kubernetes API and gRPC, with no Flyte knowledge: they
import third-party clients and the shared modules, never flyte/, the workflows or the CLI."""
