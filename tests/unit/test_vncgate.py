"""The VNC gate's look-up of who owns a loopback connection, against the kernel's table."""

from __future__ import annotations

import os
import socket

from zionwm import vncgate


def test_owner_of_a_real_loopback_connection_is_found_in_the_kernels_table() -> None:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as lsock:
            lsock.bind((host, 0))
            lsock.listen(1)
            with socket.create_connection(lsock.getsockname()[:2]) as client:
                conn, peer = lsock.accept()
                with conn:
                    server = conn.getsockname()[:2]
                    tables = vncgate._socket_tables()
                    assert vncgate.owner_uid(tables, peer[:2], server) == os.getuid()
                    assert client.getsockname()[:2] == peer[:2]
                    # nobody is connected from another port
                    other = (peer[0], peer[1] ^ 1)
                    assert vncgate.owner_uid(tables, other, server) is None


def test_table_lines_are_decoded_in_host_byte_order() -> None:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    line = "   0: 0100007F:A2C4 0100007F:170D 01 00000000:00000000 00:00000000 00000000  1234\n"
    listen = "   1: 0100007F:170D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"
    table = head + line + listen
    assert vncgate.owner_uid([table], ("127.0.0.1", 0xA2C4), ("127.0.0.1", 5901)) == 1234
    assert vncgate.owner_uid([table], ("127.0.0.1", 5901), ("0.0.0.0", 0)) is None  # LISTEN
