"""`jobctl up` keeps its Prefect port across restarts, and never takes a port in use."""

from __future__ import annotations

import socket

from jobctl.cli.stack import free_port


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def test_a_port_its_last_server_closed_connections_on_is_taken_again() -> None:
    """The server that just stopped closed its connections first: they wait in TIME_WAIT
    on its port for a minute, which a new server may bind (a Ctrl-C and a new `make run`
    keep the UI's address)."""
    listener = _listener()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server's side closes first: its end waits in TIME_WAIT
    client.close()
    listener.close()
    try:
        with socket.socket() as plain:
            plain.bind(("127.0.0.1", port))
        in_time_wait = False
    except OSError:
        in_time_wait = True
    assert in_time_wait  # what the test is about: a plain bind refuses the port

    assert free_port(port) == port


def test_a_port_a_server_listens_on_is_skipped() -> None:
    with _listener() as listener:
        port = listener.getsockname()[1]
        assert free_port(port) != port
