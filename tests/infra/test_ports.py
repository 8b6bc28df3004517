"""Ports picked for private servers: distinct, free, outside the ephemeral range."""

from __future__ import annotations

import socket

from crossbook.infra import ports
from crossbook.infra.ports import DEFAULT_PORTS, free_port, free_ports


def test_ports_picked_for_one_server_set_are_distinct() -> None:
    picked = free_ports(300)
    assert len(set(picked)) == len(picked)


def test_a_port_is_never_handed_out_twice_even_after_it_was_released() -> None:
    first = free_port()
    later = free_ports(200)
    assert first not in later


def test_picked_ports_are_bindable_and_not_kernel_ephemeral_or_default() -> None:
    start = ports._ephemeral_start()
    for port in free_ports(50):
        assert port < start
        assert port not in DEFAULT_PORTS
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_picked() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert taken not in free_ports(100)
