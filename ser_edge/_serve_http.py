"""uvicorn's HTTP protocol with Nagle's algorithm off on every connection (``ser-edge serve``).

With ``--workers`` above 1 uvicorn binds the listening socket itself, as
``socket.socket(family)``: its protocol number reads 0, not ``IPPROTO_TCP``, so asyncio does not
set ``TCP_NODELAY`` on the connections it accepts (it does when it binds the socket, as with one
worker). uvicorn writes a response's head and body separately; with Nagle on, the body waited for
the client's delayed acknowledgement of the head, some 40 ms a request. Imported by uvicorn (its
``http`` setting) in each worker, never by ``import ser_edge``.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (``auto``: httptools if installed, else h11), ``TCP_NODELAY`` on."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        """Turn Nagle's algorithm off on the connection's socket, then as uvicorn does.

        Parameters
        ----------
        transport : asyncio.BaseTransport
            The accepted connection.
        """
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - a socket already gone
                pass
        super().connection_made(transport)
