"""PodForward's teardown: every pump thread ends, and none dies with a traceback, however busy it is.

The relay's far end is a local echo server standing in for the API server's port-forward stream (a fake: the
race is between our own threads, and a real cluster cannot be made to hit it on demand). Before the fix,
__exit__ closed the pumps' sockets under them: a pump's next select() got fd -1 (ValueError, printed in the
middle of a successful deploy), and pumps blocked in select() on a closed socket stayed for up to a minute.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest
from kubernetes import client

from flyte_agents.adapters.grpc import PodForward


class EchoForward(PodForward):
    def __init__(self, echo_address: tuple[str, int]) -> None:
        super().__init__(client.CoreV1Api(client.ApiClient(client.Configuration())), "ns", "pod", 8000)
        self.echo_address = echo_address

    def _connect(self) -> socket.socket:
        return socket.create_connection(self.echo_address)


@pytest.fixture()
def echo_server():
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:  # the relay closed mid-stream: expected here
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()
    server.close()


def relay_threads() -> list[str]:
    """The forward's own threads still alive (a thread is named after its target function)."""
    return [t.name for t in threading.enumerate() if t.name.endswith(("(_pump)", "(_accept)"))]


@pytest.fixture()
def thread_errors(monkeypatch):
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


@pytest.mark.parametrize("round_", range(5))
def test_exit_ends_every_pump_while_traffic_flows(echo_server, thread_errors, round_):
    forward = EchoForward(echo_server)
    with forward:
        host, port = forward.address.split(":")
        clients = [socket.create_connection((host, int(port))) for _ in range(4)]
        for conn in clients:
            conn.sendall(b"ping")
            assert conn.recv(4) == b"ping"  # relayed both ways: the pumps are running
        stop = threading.Event()

        def chatter(conn: socket.socket) -> None:
            while not stop.is_set():
                try:
                    conn.sendall(b"x" * 1024)
                    conn.recv(65536)
                except OSError:
                    return

        talkers = [threading.Thread(target=chatter, args=(c,), daemon=True) for c in clients]
        for talker in talkers:
            talker.start()
        time.sleep(0.05)
        assert len(relay_threads()) == 5  # the listener's and one pump per connection
    assert relay_threads() == [], "a relay thread outlived the forward"
    stop.set()
    for conn in clients:
        conn.settimeout(5)
        while conn.recv(65536):  # drained to EOF: the pump closed its side
            pass
        conn.close()
    assert thread_errors == []


def test_a_connection_after_exit_is_refused(echo_server, thread_errors):
    forward = EchoForward(echo_server)
    with forward:
        address = forward.address
    host, port = address.split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2)
    assert thread_errors == []
