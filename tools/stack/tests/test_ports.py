"""Free ports are free; a listening or bound port is taken."""

import socket

from tools.stack.ports import answers, free_port, port_in_use


def test_a_free_port_is_not_in_use() -> None:
    port = free_port()
    assert not port_in_use(port)
    assert not answers("127.0.0.1", port)


def test_a_listening_port_is_in_use_and_answers() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use(port)
        assert answers("127.0.0.1", port)
    assert not answers("127.0.0.1", port)


def test_a_port_bound_on_every_address_is_in_use_on_loopback() -> None:
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        assert port_in_use(server.getsockname()[1])
