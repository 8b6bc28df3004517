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


def test_a_port_picked_by_another_process_is_not_handed_out_here() -> None:
    import subprocess
    import sys

    code = "from crossbook.infra.ports import free_ports; print(*free_ports(100))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    theirs = [int(p) for p in out.stdout.split()]
    assert len(theirs) == 100
    assert not any(ports._claim(p) for p in theirs)  # claimed by the other process


def test_a_stale_claim_is_taken_over() -> None:
    import os

    port = free_port()
    claim = ports._CLAIMS / str(port)
    old = claim.stat().st_mtime - ports.CLAIM_SECONDS - 1
    os.utime(claim, (old, old))
    assert ports._claim(port)
