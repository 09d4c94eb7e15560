"""Kubeconfigs that point at the wrong thing: each failure says what it is, not "does not answer (SomeError)".

The servers are real sockets on this machine: a closed port, a plain web server that is not a Kubernetes API,
the same behind TLS with a self-signed certificate, plain HTTP where https is expected, and a host name in the
reserved .invalid domain, which no resolver answers.
"""
from __future__ import annotations

import datetime
import http.server
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from flyte_agents.adapters.kube import Kube
from flyte_agents.errors import KubernetesError, UserError


class NotKubernetes(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"<html>a web page</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: http.server.ThreadingHTTPServer) -> str:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotKubernetes)
    yield _serve(server)
    server.shutdown()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotKubernetes)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield _serve(server)
    server.shutdown()


def kubeconfig(tmp_path: Path, server: str, **cluster: object) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    return str(path)


def error_of(path: str) -> str:
    kube = Kube.connect(path, None)
    with pytest.raises(KubernetesError) as err:
        kube.read_config_map("flyte", "x")
    kube.close()
    return str(err.value)


def test_a_host_no_resolver_knows_is_a_dns_failure(tmp_path):
    message = error_of(kubeconfig(tmp_path, "https://no-such-host.invalid:6443"))
    assert "host no-such-host.invalid is not found (DNS)" in message


def test_a_closed_port_is_refused(tmp_path):
    message = error_of(kubeconfig(tmp_path, "https://127.0.0.1:9"))
    assert "nothing accepts connections at https://127.0.0.1:9 (Connection refused)" in message


def test_an_untrusted_certificate_says_so(tmp_path, tls_server):
    message = error_of(kubeconfig(tmp_path, f"https://{tls_server}"))
    assert "presents a certificate the kubeconfig does not trust (self-signed certificate)" in message
    assert "certificate-authority-data" in message


def test_plain_http_at_an_https_url_is_no_tls(tmp_path, web_server):
    message = error_of(kubeconfig(tmp_path, f"https://{web_server}"))
    assert f"no TLS at https://{web_server}" in message


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_server_that_is_not_kubernetes_says_so_instead_of_missing_objects(tmp_path, web_server, tls_server,
                                                                            scheme):
    """A 404 web page is not a missing ConfigMap (before: read as absent, then "check --namespace")."""
    address = web_server if scheme == "http" else tls_server
    extra = {"insecure-skip-tls-verify": True} if scheme == "https" else {}
    message = error_of(kubeconfig(tmp_path, f"{scheme}://{address}", **extra))
    assert f"the server {scheme}://{address} is not a Kubernetes API server (it answered HTTP 404" in message


def test_insecure_skip_tls_verify_warns_nothing(tmp_path, tls_server):
    """urllib3's InsecureRequestWarning used to be printed before the error line."""
    path = kubeconfig(tmp_path, f"https://{tls_server}", **{"insecure-skip-tls-verify": True})
    code = ("from flyte_agents.cli.main import main\n"
            f"raise SystemExit(main(['config', 'remove', '--kubeconfig', {path!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 8
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "Warning" not in proc.stderr
    assert "is not a Kubernetes API server" in proc.stderr


@pytest.mark.parametrize("server", ["htp//bad url", "https://", "ftp://example.com", "example.com:6443"])
def test_a_server_that_is_not_a_url_is_a_user_error_before_any_request(tmp_path, server):
    with pytest.raises(UserError, match="is not a URL: use https://HOST:PORT"):
        Kube.connect(kubeconfig(tmp_path, server), None)
