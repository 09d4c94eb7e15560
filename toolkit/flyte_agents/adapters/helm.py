"""Thin synchronous facade over pyhelm3 (async), pinned to the same behaviour on helm 3 and helm 4.

* The binary: `--helm PATH`, else $FA_HELM, else `helm` on PATH; checked before pyhelm3 asserts on it.
* Roll back on failure: `--atomic` on helm 3, `--rollback-on-failure` on helm 4 (each major's own flag, so neither
  prints a deprecation warning). Both imply waiting for the release's resources.
* Never `disable_validation` (pyhelm3 splits that flag into characters: tooling §1.5), never `recreate_pods`
  (gone in helm 4), never pyhelm3's list concatenation: the caller passes ONE values dict, merged with Helm's rules.
* `recover` runs pyhelm3's get_proceedable_revision (un-sticks pending-install/upgrade/rollback releases); the
  caller asks only for a release its plan saw stuck (`Revision.stuck`), as each helm run costs ~0.2-0.4 s.
* `upgrade` takes the chart's parsed Chart.yaml (not `helm show chart`) and builds the new revision from the
  upgrade's own JSON (not a `helm status` after it): a code-change redeploy runs one helm process.
* A release's state is ONE `helm status -o json` (it carries revision, status, description and the user-supplied
  values), and `current_many` asks for several releases concurrently: a no-op deploy is mostly these lookups.
* Errors become HelmError with helm's own last `Error:` line.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HelmError, UserError


STUCK_STATUSES = frozenset({"pending-install", "pending-upgrade", "pending-rollback", "uninstalling"})


@dataclass(frozen=True)
class Revision:
    release: str
    namespace: str
    revision: int
    status: str  # deployed, failed, pending-install, ...
    description: str
    values: dict  # user-supplied values

    @classmethod
    def from_status(cls, status: dict, namespace: str) -> Revision:
        info = status.get("info") or {}
        return cls(status["name"], namespace, int(status["version"]), str(info.get("status", "unknown")),
                   info.get("description") or "", status.get("config") or {})

    @property
    def stuck(self) -> bool:
        """Left mid-operation (an interrupted helm): an upgrade must first roll it back or uninstall it."""
        return self.status in STUCK_STATUSES

    def to_dict(self) -> dict:
        return {"release": self.release, "namespace": self.namespace, "revision": self.revision,
                "status": self.status, "description": self.description}


def find_binary(explicit: str | None) -> str:
    name = explicit or os.environ.get("FA_HELM") or "helm"
    path = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
    if not path:
        raise UserError(f"helm binary {name!r} not found or not executable: install helm 3 or 4, or pass --helm PATH")
    return path


def _message(err: Exception) -> str:
    text = (getattr(err, "stderr", "") or str(err) or type(err).__name__)
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    # helm's error is its last `Error:` line plus the detail lines under it (e.g. which value broke the schema).
    shown = lines[starts[-1]:] if starts else lines[-1:]
    return " ".join(shown)[:600] or "helm failed"


class Helm:
    def __init__(self, binary: str | None, kubeconfig: str, context: str | None) -> None:
        import logging

        import pyhelm3

        # pyhelm3 logs every non-zero helm exit ("release: not found" is an answer here); errors reach the user
        # as HelmError instead.
        logging.getLogger("pyhelm3.command").setLevel(logging.CRITICAL)

        path = find_binary(binary)
        # Several files (':'-joined) come from $KUBECONFIG, which helm reads and merges itself.
        single = Path(kubeconfig) if os.pathsep not in kubeconfig else None
        self.command = pyhelm3.Command(executable=path, kubeconfig=single, kubecontext=context or None)
        try:
            self.client = pyhelm3.Client(self.command, executable=path)
        except Exception as err:  # noqa: BLE001 - version probe failed: not a helm binary
            raise UserError(f"{path} --version failed ({_message(err)}): pass a helm 3 or 4 binary with --helm") \
                from None
        self.path = path
        self._prefetched: tuple[tuple[str, ...], str, dict[str, Revision | None]] | None = None
        self.major = self.client.version.major
        if self.major not in (3, 4):
            raise UserError(f"helm {self.client.version} at {path} is not supported: use helm 3 or 4")

    def _run(self, what: str, coro: Any) -> Any:
        import pyhelm3.errors

        try:
            return asyncio.run(coro)
        except pyhelm3.errors.Error as err:
            raise HelmError(f"helm {what} failed: {_message(err)}") from None

    @property
    def version(self) -> str:
        return str(self.client.version)

    def current(self, release: str, namespace: str) -> Revision | None:
        return self.current_many([release], namespace)[release]

    def prefetch(self, releases: list[str], namespace: str) -> None:
        """Look these releases up now, for the next current_many of exactly them (that one call only: later ones ask
        helm again). The CLI runs this in the background while the Kubernetes client loads."""
        self._prefetched = (tuple(releases), namespace, self.current_many(releases, namespace))

    def current_many(self, releases: list[str], namespace: str) -> dict[str, Revision | None]:
        """Each release's current revision (None: not installed), the `helm status` calls run concurrently."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[:2] == (tuple(releases), namespace):
            return prefetched[2]

        async def every() -> list[Revision | None]:
            return list(await asyncio.gather(*(self._status(r, namespace) for r in releases)))

        return dict(zip(releases, self._run(f"status {', '.join(releases)}", every())))

    async def _status(self, release: str, namespace: str) -> Revision | None:
        import pyhelm3.errors

        try:
            return Revision.from_status(await self.command.status(release, namespace=namespace), namespace)
        except pyhelm3.errors.ReleaseNotFoundError:
            return None

    def recover(self, release: str, namespace: str, timeout: str) -> int | None:
        """Roll a stuck release back (or uninstall a stuck install); the revision it is at then, None if gone."""
        revision = self._run(f"recovery of {release}", self.client.get_proceedable_revision(
            release, namespace=namespace, timeout=timeout))
        return revision.revision if revision is not None else None

    def upgrade(self, release: str, chart: Path, chart_meta: dict, values: dict, namespace: str, timeout: str,
                description: str) -> Revision:
        from pyhelm3.models import Chart

        async def install() -> Revision:
            flag = {"atomic": True} if self.major == 3 else {"rollback_on_failure": True}
            new = await self.client.install_or_upgrade_release(
                release, Chart(self.command, ref=chart, metadata=chart_meta), values, namespace=namespace,
                timeout=timeout, wait=True, cleanup_on_fail=True, create_namespace=False, description=description,
                **flag)
            return Revision(release, namespace, new.revision, new.status.value, new.description or "", values)

        return self._run(f"upgrade --install {release}", install())

    def rollback(self, release: str, namespace: str, revision: int, timeout: str) -> None:
        async def back() -> None:
            current = await self.client.get_current_revision(release, namespace=namespace)
            await current.release.rollback(revision, cleanup_on_fail=True, timeout=timeout, wait=True)

        self._run(f"rollback {release} to revision {revision}", back())

    def uninstall(self, release: str, namespace: str, timeout: str) -> None:
        import pyhelm3.errors

        async def remove() -> None:
            try:
                await self.client.uninstall_release(release, namespace=namespace, timeout=timeout, wait=True)
            except pyhelm3.errors.ReleaseNotFoundError:
                return  # already gone: an interrupted `--atomic` install removes its own release

        self._run(f"uninstall {release}", remove())

    def releases(self, namespace: str) -> list[str]:
        async def names() -> list[str]:
            return [r.name for r in await self.client.list_releases(namespace=namespace)]

        return self._run("list", names())

