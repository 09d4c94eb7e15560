"""gRPC endpoints of agent services (`k8s://` and `dns:///` forms) and Go duration checks."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError


_DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")
# ------------------------------------------------------------------------------------------------ endpoints

@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "k8s", "dns", "passthrough" or "" (gRPC's default)
    host: str
    port: int
    namespace: str = ""

    @property
    def needs_endpoints_rbac(self) -> bool:
        """The k8s resolver watches Endpoints objects, so propeller's ServiceAccount needs get/list/watch on them."""
        return self.scheme == "k8s"


def k8s_endpoint(service: str, namespace: str, port: int) -> str:
    return f"k8s://{service}.{namespace}:{port}"


def dns_endpoint(service: str, namespace: str, port: int) -> str:
    return f"dns:///{service}.{namespace}.svc.cluster.local:{port}"


def parse_endpoint(text: str, what: str = "endpoint") -> Endpoint:
    """Parse a gRPC target as propeller dials it; the k8s resolver accepts three spellings (k8s_resolver.go)."""
    text = str(text).strip()
    scheme, rest = "", text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme not in ("k8s", "dns", "passthrough"):
            raise UserError(f"{what} {text!r} has scheme {scheme}://, which propeller cannot dial: use "
                            "k8s://svc.ns:port or dns:///svc.ns.svc.cluster.local:port")
        if scheme in ("dns", "passthrough") or rest.startswith("/"):
            rest = rest.split("/", 1)[1] if "/" in rest else rest  # drop the (usually empty) authority
    namespace = ""
    if scheme == "k8s" and "/" in rest:
        namespace, rest = rest.split("/", 1)
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} {text!r} has no port: add the container port, e.g. k8s://svc.ns:8000")
    if not host or not _HOST_RE.match(host):
        raise UserError(f"{what} {text!r} has an invalid host {host!r}: use a DNS name like svc.namespace")
    if scheme == "k8s" and not namespace and "." not in host:
        raise UserError(f"{what} {text!r} names no namespace: use k8s://<service>.<namespace>:<port>")
    return Endpoint(scheme, host, int(port), namespace)


def check_duration(value: str, what: str) -> None:
    if not _DURATION_RE.match(str(value)):
        raise UserError(f"{what} {value!r} is not a Go duration: use e.g. 10s, 500ms or 1m")
