"""Find the running Flyte sandbox (`flytectl demo start`) and the cluster facts a deploy needs.

The sandbox is: kube context `flyte-sandbox` (in $KUBECONFIG / ~/.kube/config, or ~/.flyte/sandbox/kubeconfig
which flytectl writes), propeller in Deployment flyte/flyte-sandbox, and the registry on localhost:30000.
Each miss is one line saying what is missing and how to start it.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..adapters import kubeconfig as kubeconfigs
from ..adapters.kube import Kube
from ..errors import KubernetesError, RegistryError, UserError
from ..flyte import propeller_target as pt
from ..flyte.versions import FlyteVersion, Naming, naming_for
from ..imageref import SANDBOX_REGISTRY
from . import routing

CONTEXT = "flyte-sandbox"
NAMESPACE = "flyte"
FLYTECTL_KUBECONFIG = Path("~/.flyte/sandbox/kubeconfig")
START = "start it with `flytectl demo start`"


@dataclass(frozen=True)
class Cluster:
    """Where a deploy goes: the connection, propeller's config target and the Flyte version's naming."""

    kubeconfig: str
    context: str
    namespace: str  # the releases' namespace
    target: pt.PropellerTarget
    version: FlyteVersion
    version_source: str
    registry: str | None
    sandbox: bool

    @property
    def naming(self) -> Naming:
        return naming_for(self.version)

    def to_dict(self) -> dict:
        return {"kubeconfig": self.kubeconfig, "context": self.context, "namespace": self.namespace,
                "flavor": self.target.flavor.value, "propeller": self.target.deployment,
                "flyte_version": str(self.version), "version_source": self.version_source,
                "plugin": self.naming.plugin, "registry": self.registry, "sandbox": self.sandbox}


def sandbox_kubeconfig(kubeconfig: str | None) -> str:
    """The kubeconfig (files, ':'-joined) that has context flyte-sandbox: --kubeconfig, else $KUBECONFIG or
    ~/.kube/config, then flytectl's. A file that exists but is broken is an error, as it is for kubectl."""
    candidates = [kubeconfig] if kubeconfig else [None, str(FLYTECTL_KUBECONFIG)]
    looked = []
    for candidate in candidates:
        files = kubeconfigs.paths(candidate)
        looked.append(os.pathsep.join(map(str, files)))
        if not kubeconfig and not any(f.exists() for f in files):
            continue  # a default place with no file: just not the sandbox's
        found = kubeconfigs.load(candidate)
        if CONTEXT in found.contexts:
            return found.location
    raise UserError(f"the Flyte sandbox is not running (no kube context {CONTEXT} in {', '.join(looked)}): {START}")


def detect_sandbox(kubeconfig: str | None, registry: str | None = None) -> tuple[Cluster, Kube]:
    path = sandbox_kubeconfig(kubeconfig)
    kube = Kube.connect(path, CONTEXT)
    try:
        target, version, source = routing.discover(kube, NAMESPACE, pt.Flavor.SANDBOX, None)
    except KubernetesError as err:
        raise KubernetesError(f"the Flyte sandbox is not running ({err}): {START}") from None
    except UserError as err:
        raise UserError(f"context {CONTEXT} has no Flyte sandbox ({err}): {START}") from None
    registry = registry or SANDBOX_REGISTRY
    check_registry(registry)
    return Cluster(path, CONTEXT, NAMESPACE, target, version, source, registry, True), kube


def detect_cluster(kubeconfig: str | None, context: str | None, namespace: str, propeller_namespace: str,
                   flavor: pt.Flavor | None, version: FlyteVersion | None, registry: str | None
                   ) -> tuple[Cluster, Kube]:
    kube = Kube.connect(kubeconfig, context)
    target, found, source = routing.discover(kube, propeller_namespace, flavor, version)
    assert found is not None
    path = kubeconfigs.load(kubeconfig).location
    return Cluster(path, kube.context, namespace, target, found, source, registry, False), kube


def check_registry(registry: str) -> None:
    """The sandbox registry answers /v2/ (any HTTP status means it is up; only no answer is a failure)."""
    try:
        urllib.request.urlopen(f"http://{registry}/v2/", timeout=5).close()
    except urllib.error.HTTPError:
        return
    except OSError as err:
        reason = getattr(err, "reason", err)
        raise RegistryError(f"the sandbox registry {registry} does not answer ({reason}): the sandbox is not "
                            f"fully up; restart it with `flytectl demo start`") from None
