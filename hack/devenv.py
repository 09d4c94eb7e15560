#!/usr/bin/env python3
"""The real components the toolkit is tested against, started on this machine.

    devenv.py up      start what does not already answer, write .dev/env.sh, print one line per component
    devenv.py down    stop exactly what `up` started (by recorded PID)
    devenv.py status  print what answers

Components: Docker Engine (Debian docker.io), an OCI registry on 127.0.0.1:30000 (Debian docker-registry), helm 3
and helm 4 (built from the Go module proxy), a Kubernetes control plane (etcd + kube-apiserver,
kube-controller-manager, kube-scheduler built from the k8s.io/kubernetes module + kwok for fake nodes and pods) and
a base image with Python (mmdebstrap + docker import); flytepropeller and kubectl-flyte for the sandbox stand-in are
built too (hack/build-propeller.sh). Tool builds are cached outside the repo, keyed by version.
Stdlib only: this runs before the project's virtualenv exists.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HACK = REPO / "hack"
CACHE = Path(os.environ.get("FA_CACHE_DIR", Path.home() / ".cache" / "flyte-agents"))
# Runtime state is shared by every checkout on the machine, so a second clone finds the running components.
STATE = Path(os.environ.get("FA_STATE_DIR", "/tmp/flyte-agents-env"))

KUBE_VERSION = "v1.34.4"
# Built, not Debian's 3.4: kube-apiserver needs etcd >= 3.4.31 for watch-progress requests, without which
# client-go's streaming lists (used by kwok) fail and kwok misses pod updates.
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM3_VERSION = "v3.21.4"
HELM4_VERSION = "v4.2.4"
# flytepropeller + kubectl-flyte for the stand-in's flyte-sandbox pod (hack/build-propeller.sh).
PROPELLER_VERSION = "v1.16.8"
BASE_SUITE = "bookworm"
BASE_IMAGE = f"flyte-agents/base-python:{BASE_SUITE}"
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates,tini"

REGISTRY = "127.0.0.1:30000"
DOCKER_SOCK = "/var/run/docker.sock"
ETCD_PORT, ETCD_PEER_PORT = 12379, 12380
APISERVER_PORT = 16443
KWOK_PORT = 10247
NODE_NAME = "kwok-node-0"
# kwok gives pods IPs from the node's pod CIDR. A `local` route makes every address of it answer on this machine
# (as 127.0.0.0/8 does; loopback itself is refused in Endpoints), so a container published on its pod's IP is reached
# through the Service's Endpoints like in a real cluster (propeller's k8s:// resolver).
POD_CIDR = "10.244.0.0/24"
APT_PACKAGES = {"dockerd": "docker.io", "docker-registry": "docker-registry", "mmdebstrap": "mmdebstrap"}


class EnvError(Exception):
    """A component could not be started; the message names it and carries its log tail."""


@dataclass
class Result:
    name: str
    version: str
    seconds: float
    action: str  # "started", "running", "built", "cached"


# ---------------------------------------------------------------------------------------------------- processes

def log_path(name: str) -> Path:
    return STATE / "logs" / f"{name}.log"


def pid_path(name: str) -> Path:
    return STATE / "pids" / f"{name}.pid"


def log_tail(name: str, lines: int = 25) -> str:
    path = log_path(name)
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Start a daemon detached from this process, logging to STATE/logs and recording its PID."""
    for p in (log_path(name), pid_path(name)):
        p.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path(name), "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
    pid_path(name).write_text(str(proc.pid))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still "exists"; treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def recorded_pid(name: str) -> int | None:
    try:
        pid = int(pid_path(name).read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def stop(name: str, timeout: float = 15) -> bool:
    pid = recorded_pid(name)
    pid_path(name).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def wait_until(name: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        pid_file = pid_path(name)
        if pid_file.exists() and recorded_pid(name) is None:
            raise EnvError(f"{name} exited during start-up; last lines of {log_path(name)}:\n{log_tail(name)}")
        time.sleep(0.2)
    raise EnvError(f"{name} did not answer within {timeout:.0f}s; last lines of {log_path(name)}:\n{log_tail(name)}")


def run(argv: list[str], **kw) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


# ---------------------------------------------------------------------------------------------------- probes

def docker_api(path: str, method: str = "GET") -> tuple[int, bytes]:
    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(DOCKER_SOCK)

    conn = UnixConnection("localhost")
    conn.request(method, path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def docker_answers() -> bool:
    try:
        return docker_api("/_ping")[0] == 200
    except OSError:
        return False


def http_status(url: str, context: ssl.SSLContext | None = None) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, ValueError):
        return None


def registry_answers() -> bool:
    return http_status(f"http://{REGISTRY}/v2/") == 200


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------------------------------------------- installs

def ensure_apt(*commands: str) -> None:
    missing = sorted({APT_PACKAGES[c] for c in commands if not shutil.which(c)})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env, capture_output=True)


def cached_build(name: str, version: str, build_argv: list[str], *extra: str) -> tuple[Path, bool]:
    """Return (directory, was_cached) for a Go-built tool, building it into CACHE/tools/NAME-VERSION on a miss."""
    out = CACHE / "tools" / f"{name}-{version}"
    if out.is_dir() and any(out.iterdir()):
        return out, True
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([*build_argv, str(out), *extra], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise EnvError(f"building {name} {version} failed:\n{tail}")
    return out, False


def go_install(name: str, pkg: str, version: str, ldflags: str = "") -> tuple[Path, bool]:
    return cached_build(name, version, [str(HACK / "go-install.sh"), f"{pkg}@{version}"], ldflags)


# ---------------------------------------------------------------------------------------------------- components

def storage_drivers() -> list[str]:
    """Storage drivers to try, in order. overlay2 shares layers between images, build steps and containers; vfs copies
    the whole image for each (about 20 s a copy of the 385 MB agent image, so a one-file code-change build takes a
    minute instead of a second: issue 14). vfs stays as the fallback where the kernel or the filesystem under
    /var/lib/docker refuses overlay mounts. FA_DOCKER_STORAGE picks another first choice."""
    chosen = os.environ.get("FA_DOCKER_STORAGE", "overlay2")
    return [chosen] if chosen == "vfs" else [chosen, "vfs"]


def up_docker() -> Result:
    t0 = time.monotonic()
    action = "running"
    if not docker_answers():
        ensure_apt("dockerd")
        drivers = storage_drivers()
        for driver in drivers:
            start("dockerd", ["dockerd", "--iptables=false", f"--storage-driver={driver}",
                              "--host", f"unix://{DOCKER_SOCK}", "--pidfile", str(STATE / "dockerd.pid"),
                              "--data-root", "/var/lib/docker"])
            try:
                wait_until("dockerd", docker_answers, 60)
                break
            except EnvError:
                if driver == drivers[-1]:
                    raise
                stop("dockerd")
        action = "started"
    info = json.loads(docker_api("/info")[1])
    return Result("docker", f"Engine {info['ServerVersion']} ({info['Driver']})", time.monotonic() - t0, action)


def up_registry() -> Result:
    t0 = time.monotonic()
    action = "running"
    if not registry_answers():
        ensure_apt("docker-registry")
        data = Path(tempfile.mkdtemp(prefix="flyte-agents-registry-"))
        config = STATE / "registry.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {data}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{REGISTRY}'}}\n")
        (STATE / "registry.data").write_text(str(data))
        start("registry", ["docker-registry", "serve", str(config)])
        wait_until("registry", registry_answers, 30)
        action = "started"
    version = run(["docker-registry", "--version"]).split()[-1] if shutil.which("docker-registry") else "?"
    return Result("registry", f"distribution {version} at {REGISTRY}", time.monotonic() - t0, action)


def up_helm(major: int, version: str) -> tuple[Result, Path]:
    t0 = time.monotonic()
    # Without the version stamp helm reports "v3.21", which pyhelm3's semver parsing rejects.
    out, cached = go_install("helm", f"helm.sh/helm/v{major}/cmd/helm", version,
                             f"-X helm.sh/helm/v{major}/internal/version.version={version}")
    helm = out / "helm"
    shown = run([str(helm), "version", "--template", "{{.Version}}"]).strip()
    return Result(f"helm{major}", shown, time.monotonic() - t0, "cached" if cached else "built"), helm


def up_propeller() -> tuple[Result, Path]:
    t0 = time.monotonic()
    out, cached = cached_build("propeller", PROPELLER_VERSION, [str(HACK / "build-propeller.sh"), PROPELLER_VERSION])
    return Result("propeller", f"flytepropeller {PROPELLER_VERSION} + kubectl-flyte", time.monotonic() - t0,
                  "cached" if cached else "built"), out


def up_base_image() -> Result:
    t0 = time.monotonic()
    if docker_api(f"/images/{BASE_IMAGE}/json")[0] == 200:
        return Result("base-image", BASE_IMAGE, time.monotonic() - t0, "running")
    tarball = CACHE / "images" / f"{BASE_SUITE}-python.tar"
    action = "cached"
    if not tarball.is_file():
        ensure_apt("mmdebstrap")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        tmp = tarball.with_suffix(".partial.tar")  # mmdebstrap picks the format by extension
        proc = subprocess.run(["mmdebstrap", "--variant=apt", f"--include={BASE_PACKAGES}", BASE_SUITE, str(tmp)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvError("mmdebstrap failed:\n" + "\n".join(proc.stderr.splitlines()[-25:]))
        tmp.rename(tarball)
        action = "built"
    subprocess.run(["docker", "import", str(tarball), BASE_IMAGE], check=True, capture_output=True,
                   env={**os.environ, "DOCKER_HOST": f"unix://{DOCKER_SOCK}"})
    return Result("base-image", BASE_IMAGE, time.monotonic() - t0, action)


# -------------------------------------------------------------------------------------------- kube control plane

KUBE = STATE / "kube"
PKI = KUBE / "pki"
KUBECONFIG = KUBE / "kubeconfig"


def make_pki() -> None:
    """A CA, one admin cert (CN kwok-admin, O system:masters) that also serves the API, and an SA key pair."""
    if (PKI / "admin.crt").exists():
        return
    PKI.mkdir(parents=True, exist_ok=True)
    ext = PKI / "admin.ext"
    ext.write_text("subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                   "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", "/CN=flyte-agents-ca",
         "-keyout", str(PKI / "ca.key"), "-out", str(PKI / "ca.crt")])
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=system:masters/CN=kwok-admin",
         "-keyout", str(PKI / "admin.key"), "-out", str(PKI / "admin.csr")])
    run(["openssl", "x509", "-req", "-in", str(PKI / "admin.csr"), "-CA", str(PKI / "ca.crt"), "-CAkey",
         str(PKI / "ca.key"), "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out",
         str(PKI / "admin.crt")])
    for f in PKI.iterdir():
        f.chmod(0o600)


def write_kubeconfig() -> None:
    """Write the admin kubeconfig (mode 600: helm warns about group-readable files, which breaks JSON parsing)."""
    ca, crt, key = (str(PKI / n) for n in ("ca.crt", "admin.crt", "admin.key"))
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "kwok",
        "clusters": [{"name": "kwok", "cluster": {"server": f"https://127.0.0.1:{APISERVER_PORT}",
                                                  "certificate-authority": ca}}],
        "users": [{"name": "kwok-admin", "user": {"client-certificate": crt, "client-key": key}}],
        "contexts": [{"name": "kwok", "context": {"cluster": "kwok", "user": "kwok-admin"}}],
    }
    if not KUBECONFIG.exists():  # keep contexts added later (make sandbox adds flyte-sandbox)
        KUBECONFIG.write_text(json.dumps(config, indent=2))
        KUBECONFIG.chmod(0o600)


def apiserver_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return ctx


def apiserver_ready() -> bool:
    return (PKI / "ca.crt").exists() and \
        http_status(f"https://127.0.0.1:{APISERVER_PORT}/readyz", apiserver_ctx()) == 200


def node_ready() -> bool:
    try:
        out = kubectl("get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
    except subprocess.CalledProcessError:
        return False
    return out.strip() == "True"


def kube_bin() -> Path:
    return CACHE / "tools" / f"kube-{KUBE_VERSION}"


def kube_path_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{kube_bin()}:{os.environ['PATH']}"}


def up_kube() -> Result:
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        kube_f = pool.submit(cached_build, "kube", KUBE_VERSION, [str(HACK / "build-kube.sh"), KUBE_VERSION])
        etcd_f = pool.submit(cached_build, "etcd", ETCD_VERSION,
                             [str(HACK / "go-build-module.sh"), "go.etcd.io/etcd/server/v3", ETCD_VERSION,
                              ETCD_VERSION], "etcd=go.etcd.io/etcd/server/v3")
        kwok_f = pool.submit(go_install, "kwok", "sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION)
        (kube_dir, kube_cached), (etcd_dir, etcd_cached), (kwok_dir, kwok_cached) = \
            kube_f.result(), etcd_f.result(), kwok_f.result()
    built = time.monotonic() - t0
    make_pki()
    write_kubeconfig()
    crt, key, ca = (str(PKI / n) for n in ("admin.crt", "admin.key", "ca.crt"))
    started_before = set(running_daemons())
    if not port_open(ETCD_PORT):
        start("etcd", [str(etcd_dir / "etcd"), "--name", "kwok", "--data-dir", str(KUBE / "etcd"),
                       "--listen-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
                       "--advertise-client-urls", f"http://127.0.0.1:{ETCD_PORT}",
                       "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
                       "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
                       "--initial-cluster", f"kwok=http://127.0.0.1:{ETCD_PEER_PORT}",
                       "--quota-backend-bytes", str(4 << 30), "--unsafe-no-fsync"])
        wait_until("etcd", lambda: http_status(f"http://127.0.0.1:{ETCD_PORT}/health") == 200, 30)
    if not apiserver_ready():
        start("kube-apiserver", [
            str(kube_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            "--bind-address=127.0.0.1", f"--secure-port={APISERVER_PORT}", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={crt}", f"--tls-private-key-file={key}", f"--client-ca-file={ca}",
            f"--service-account-key-file={key}", f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--kubelet-client-certificate={crt}", f"--kubelet-client-key={key}",
            f"--proxy-client-cert-file={crt}", f"--proxy-client-key-file={key}",
            "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            "--kubelet-preferred-address-types=InternalIP",  # port-forward reaches kwok's server on 127.0.0.1
            "--service-cluster-ip-range=10.96.0.0/16", "--service-node-port-range=30000-32767",
            "--enable-priority-and-fairness=false", "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0"])
        wait_until("kube-apiserver", apiserver_ready, 90)
    if not recorded_pid("kube-controller-manager"):
        start("kube-controller-manager", [
            str(kube_dir / "kube-controller-manager"), f"--kubeconfig={KUBECONFIG}", "--leader-elect=false",
            f"--root-ca-file={ca}", f"--service-account-private-key-file={key}", "--use-service-account-credentials",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            "--bind-address=127.0.0.1", "--secure-port=0", "--kube-api-qps=5000", "--kube-api-burst=10000",
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10"])
    if not recorded_pid("kube-scheduler"):
        start("kube-scheduler", [str(kube_dir / "kube-scheduler"), f"--kubeconfig={KUBECONFIG}",
                                 "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0"])
    if not recorded_pid("kwok"):
        kubectl("apply", "-f", "-", stdin=(HACK / "kwok" / "crds.yaml").read_text())
        # A restarted kwok cannot take over the node lease its predecessor held, and then leaves the node's pods
        # alone; start it with no lease.
        kubectl("-n", "kube-node-lease", "delete", "lease", NODE_NAME, "--ignore-not-found")
        start("kwok", [str(kwok_dir / "kwok"), f"--kubeconfig={KUBECONFIG}", f"--config={HACK / 'kwok' / 'stages.yaml'}",
                       "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                       "--node-ip=127.0.0.1", f"--node-name={NODE_NAME}", f"--node-port={KWOK_PORT}",
                       f"--server-address=127.0.0.1:{KWOK_PORT}", f"--tls-cert-file={crt}",
                       f"--tls-private-key-file={key}", "--node-lease-duration-seconds=40",
                       "--enable-crds=PortForward,ClusterPortForward"])
    create_node()
    wait_until("kwok", node_ready, 60)
    if set(running_daemons()) == started_before:
        action = "running"
    else:
        action = "started" if kube_cached and etcd_cached and kwok_cached else f"built in {built:.0f}s"
    return Result("kubernetes", f"{KUBE_VERSION} (kwok {KWOK_VERSION}, https://127.0.0.1:{APISERVER_PORT})",
                  time.monotonic() - t0, action)


def kubectl(*args: str, stdin: str | None = None) -> str:
    """Our kubectl build against the cluster's admin kubeconfig; raises CalledProcessError on failure."""
    return run(["kubectl", "--kubeconfig", str(KUBECONFIG), *args], input=stdin, env=kube_path_env())


def up_pod_network() -> None:
    if POD_CIDR not in run(["ip", "route", "show", "table", "local", POD_CIDR]):
        run(["ip", "route", "add", "local", POD_CIDR, "dev", "lo"])
        (STATE / "pod-route").write_text(POD_CIDR)


def down_pod_network() -> None:
    route = STATE / "pod-route"
    if route.exists():
        subprocess.run(["ip", "route", "del", "local", route.read_text().strip(), "dev", "lo"], capture_output=True)
        route.unlink()


def create_node() -> None:
    up_pod_network()
    try:
        cidr = kubectl("get", "node", NODE_NAME, "-o", "jsonpath={.spec.podCIDR}").strip()
    except subprocess.CalledProcessError:
        cidr = None
    if cidr is not None and cidr != POD_CIDR:  # a node's pod CIDR is immutable: replace a node of an older make env
        kubectl("delete", "node", NODE_NAME, "--wait=true")
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "type": "kwok"}},
            "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]}}
    kubectl("apply", "-f", "-", stdin=json.dumps(node))


# ---------------------------------------------------------------------------------------------------- commands

def write_env_sh(helm3: Path, helm4: Path, propeller: Path) -> Path:
    env = {
        "KUBECONFIG": str(KUBECONFIG),
        "FA_REGISTRY": REGISTRY,
        "FA_HELM3": str(helm3),
        "FA_HELM4": str(helm4),
        "FA_KUBECTL": str(kube_bin() / "kubectl"),
        "FA_PROPELLER": str(propeller / "flytepropeller"),
        "FA_KUBECTL_FLYTE": str(propeller / "kubectl-flyte"),
        "FA_BASE_IMAGE": BASE_IMAGE,
        "FA_STATE_DIR": str(STATE),
        "DOCKER_HOST": f"unix://{DOCKER_SOCK}",
    }
    path = REPO / ".dev" / "env.sh"
    path.parent.mkdir(exist_ok=True)
    lines = ["# Written by `make env` (hack/devenv.py). Source it: . .dev/env.sh"]
    lines += [f"export {k}={v}" for k, v in env.items()]
    lines.append(f'export PATH="{kube_bin()}:$PATH"')
    path.write_text("\n".join(lines) + "\n")
    return path


def print_result(r: Result) -> None:
    print(f"  {r.name:<11} {r.action:<16} {r.seconds:6.1f}s  {r.version}", flush=True)


def cmd_up(_args) -> int:
    t0 = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    print(f"make env: state in {STATE}, tool cache in {CACHE}", flush=True)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            # Builds first (they take minutes cold; they share Go's build cache), daemons meanwhile.
            helm3_f = pool.submit(up_helm, 3, HELM3_VERSION)
            helm4_f = pool.submit(up_helm, 4, HELM4_VERSION)
            kube_f = pool.submit(up_kube)
            propeller_f = pool.submit(up_propeller)
            for r in (up_docker(), up_registry(), up_base_image()):
                print_result(r)
            (r3, helm3), (r4, helm4) = helm3_f.result(), helm4_f.result()
            print_result(r3)
            print_result(r4)
            print_result(kube_f.result())
            r_propeller, propeller = propeller_f.result()
            print_result(r_propeller)
    except (EnvError, subprocess.CalledProcessError) as err:
        detail = err.stderr if isinstance(err, subprocess.CalledProcessError) else ""
        print(f"make env: FAILED: {err}\n{detail or ''}", file=sys.stderr)
        return 1
    path = write_env_sh(helm3, helm4, propeller)
    print(f"make env: ready in {time.monotonic() - t0:.1f}s; wrote {path.relative_to(REPO)}", flush=True)
    return 0


# Reverse start order: dependents first.
DAEMONS = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "registry", "dockerd"]


def running_daemons() -> list[str]:
    return [name for name in DAEMONS if recorded_pid(name)]


def cmd_down(_args) -> int:
    for name in DAEMONS:
        if stop(name):
            print(f"  stopped {name}")
    data = STATE / "registry.data"
    if data.exists() and not recorded_pid("registry"):
        shutil.rmtree(data.read_text().strip(), ignore_errors=True)
        data.unlink()
    shutil.rmtree(KUBE, ignore_errors=True)  # etcd data and certs belong to the stopped cluster
    down_pod_network()
    return 0


def cmd_status(_args) -> int:
    checks = {"docker": docker_answers(), "registry": registry_answers(), "kube-apiserver": apiserver_ready(),
              "kwok": recorded_pid("kwok") is not None}
    for name, ok in checks.items():
        print(f"  {name:<15} {'up' if ok else 'down'}")
    return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up").set_defaults(fn=cmd_up)
    sub.add_parser("down").set_defaults(fn=cmd_down)
    sub.add_parser("status").set_defaults(fn=cmd_status)
    args = parser.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
