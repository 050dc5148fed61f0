"""A TCP proxy in front of a server that can freeze: it stops taking what clients send, as a server that hangs
(stopped, swapped out, its disk full) does. Clients' writes then block once the socket buffers between are full;
its receive buffers are small, so that comes after a few kilobytes, not megabytes."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

_BUFFER_BYTES = 8192


class FreezingProxy:
    """127.0.0.1:port → 127.0.0.1:server_port, every connection forwarded both ways until freeze()."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        # Accepted connections inherit it; set before they exist, it also keeps Linux from growing it.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER_BYTES)
        self.port = self._listener.getsockname()[1]
        self._taking = threading.Event()
        self._taking.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []

    def freeze(self) -> None:
        """From now on nothing more is read from the clients; what the server sends still reaches them."""
        self._taking.clear()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(("127.0.0.1", self.server_port))
            except OSError:
                client.close()  # the server is down: so is the way through here
                continue
            self._sockets += [client, server]
            for source, target, stops_on_freeze in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._forward, args=(source, target, stops_on_freeze), daemon=True).start()

    def _forward(self, source: socket.socket, target: socket.socket, stops_on_freeze: bool) -> None:
        with contextlib.suppress(OSError):
            while not self._closed.is_set():
                if stops_on_freeze and not self._taking.is_set():
                    self._closed.wait(0.1)
                    continue
                data = source.recv(_BUFFER_BYTES)
                if not data:
                    break
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        self._listener.close()
        for each in self._sockets:
            each.close()
