"""Free ports are free; a listening or bound port is taken."""

import socket

from tools.stack.ports import PICKED_SPAN, answers, ephemeral_range, free_port, port_in_use


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


def test_a_free_port_lies_below_the_ephemeral_range() -> None:
    """Outgoing connections take local ports from that range: one opened between the pick and
    the server's bind would otherwise hold the port."""
    low, _ = ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(low - PICKED_SPAN <= port < low for port in ports)
    assert len(ports) > 1  # picked at random: two stacks started at once rarely collide
