"""Kubeconfig files read as kubectl and helm read them, without importing the kubernetes client (a third of a
second: commands check their kube context before they open anything, and run helm while the client loads).

--kubeconfig names one file. Otherwise $KUBECONFIG may list several files (':'-separated), merged like kubectl's
loading rules: files that do not exist are skipped, the first file to define a context name wins, and the
current context is the first file's that sets one. Without $KUBECONFIG it is ~/.kube/config.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import userfiles
from ..errors import UserError

DEFAULT = Path("~/.kube/config")


@dataclass(frozen=True)
class Kubeconfig:
    paths: tuple[Path, ...]  # the files read, in merge order
    contexts: tuple[str, ...]
    current: str | None

    @property
    def location(self) -> str:
        """The files as the kubernetes client and $KUBECONFIG take them (':'-joined)."""
        return os.pathsep.join(str(p) for p in self.paths)

    def context(self, wanted: str | None) -> str:
        """The context to use: `wanted`, which must exist, else the current one."""
        if not self.contexts:
            raise UserError(f"kubeconfig {self.location} has no contexts: add one (kubectl config set-context) or "
                            "pass another --kubeconfig")
        if wanted and wanted not in self.contexts:
            raise UserError(f"kube context {wanted!r} is not in {self.location}: use one of "
                            f"{', '.join(self.contexts)}")
        if not wanted and not self.current:
            raise UserError(f"kubeconfig {self.location} has no current-context: pass --context (one of "
                            f"{', '.join(self.contexts)})")
        return wanted or self.current or ""


def paths(explicit: str | None) -> tuple[Path, ...]:
    """--kubeconfig (or a Kubeconfig.location passed on), else the files of $KUBECONFIG, else ~/.kube/config
    (not checked for existence)."""
    listed = [Path(p).expanduser() for p in (explicit or os.environ.get("KUBECONFIG", "")).split(os.pathsep) if p]
    return tuple(dict.fromkeys(listed)) or (DEFAULT.expanduser(),)


def load(explicit: str | None) -> Kubeconfig:
    """The merged kubeconfig; UserError naming the file when one is missing or unusable."""
    candidates = paths(explicit)
    existing = tuple(p for p in candidates if p.exists()) if len(candidates) > 1 else candidates
    if not existing:
        raise UserError(f"kubeconfig {os.pathsep.join(map(str, candidates))}: none of these files exists: fix "
                        "KUBECONFIG or pass --kubeconfig")
    if not existing[0].exists():
        source = "--kubeconfig" if explicit else "KUBECONFIG" if os.environ.get("KUBECONFIG") else "the default"
        raise UserError(f"kubeconfig {existing[0]} ({source}) does not exist: pass --kubeconfig or set KUBECONFIG")
    contexts: dict[str, None] = {}
    current = None
    for path in existing:
        names, file_current = _contexts(path)
        contexts.update(dict.fromkeys(n for n in names if n not in contexts))
        current = current or file_current
    return Kubeconfig(existing, tuple(contexts), current)


def _contexts(path: Path) -> tuple[list[str], str | None]:
    doc = userfiles.load_yaml(path, "kubeconfig")
    if doc is None:
        return [], None
    if not isinstance(doc, dict):
        raise UserError(f"kubeconfig {path} is not a kubeconfig (a YAML mapping with contexts): fix it")
    contexts = doc.get("contexts") or []
    if not isinstance(contexts, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                 for c in contexts):
        raise UserError(f"kubeconfig {path}: contexts must be a list of entries with a name: fix it")
    current = doc.get("current-context")
    return [c["name"] for c in contexts], current if isinstance(current, str) and current else None
