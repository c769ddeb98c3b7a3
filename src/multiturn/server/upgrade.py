"""uvicorn's httptools protocol, serving HTTP/1.1 upgrade offers (``Upgrade: h2c``) as plain HTTP/1.1.

The JDK's ``java.net.http.HttpClient`` defaults to HTTP/2; on ``http://`` it offers the upgrade on
every request (``Connection: Upgrade, HTTP2-Settings``, ``Upgrade: h2c``, ``HTTP2-Settings``),
body included. A server that does not speak h2c may ignore the offer and answer over HTTP/1.1
(RFC 9110 §7.8; RFC 9113 §3.1 deprecates h2c altogether). Stock uvicorn cannot: httptools tells
llhttp to skip the body of any upgrade request, llhttp reports the message complete at the end of
its head and pauses, and uvicorn, which upgrades only to WebSocket, starts the app with an empty
body (uvicorn issue 2722).

Here, an upgrade request that is not a WebSocket one uvicorn can serve is replayed: when the
parser pauses, its head is written out again without the upgrade (no ``Upgrade`` nor
``HTTP2-Settings`` header, no ``upgrade`` nor ``http2-settings`` token in ``Connection``) and fed,
with the bytes after it, to a fresh parser, which reads the body and any later request on the
connection as usual. Requests without an upgrade take the stock path: the parser's C-level
``should_upgrade()`` is false for them, so they never reach this code.
"""

from __future__ import annotations

import contextlib

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_UPGRADE_TOKENS = frozenset({b"upgrade", b"http2-settings"})


class UpgradeDecliningProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that answers every non-WebSocket upgrade offer over HTTP/1.1."""

    def _should_upgrade(self) -> bool:
        # True when the parser's upgrade pause is this protocol's to resolve: any upgrade offered
        # by headers. The stock callbacks then start no request for the paused head (its body is
        # missing); data_received either hands the connection to WebSocket or replays the head.
        return self._get_upgrade() is not None

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        while True:  # once more per upgrade offer in data (a replayed head offers none)
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            except httptools.HttpParserUpgrade as exc:
                upgrade = self._get_upgrade()
                if upgrade == b"websocket" and self.ws_protocol_class is not None:
                    self.handle_websocket_upgrade()
                elif upgrade is not None:
                    (offset,) = exc.args
                    data = self._head_without_upgrade() + data[offset:]
                    self.parser = self._fresh_parser()
                    continue
                else:  # CONNECT, which llhttp pauses on whatever its headers: served as uvicorn does
                    self._unsupported_upgrade_warning()
            return

    def _fresh_parser(self) -> httptools.HttpRequestParser:
        parser = httptools.HttpRequestParser(self)
        # As uvicorn's constructor does: answer the first of a pipelined run even if the peer then
        # closes. httptools < 0.6.3 has no such switch.
        with contextlib.suppress(AttributeError):
            parser.set_dangerous_leniencies(lenient_data_after_close=True)
        return parser

    def _head_without_upgrade(self) -> bytes:
        """The paused request's head again, without its upgrade offer."""
        version = self.parser.get_http_version().encode("ascii")
        head = [self.scope["method"].encode("ascii"), b" ", self.url, b" HTTP/", version, b"\r\n"]
        for name, value in self.headers:
            if name in _UPGRADE_TOKENS:  # the Upgrade and HTTP2-Settings headers
                continue
            if name == b"connection":
                tokens = (token.strip() for token in value.split(b","))
                value = b", ".join(t for t in tokens if t and t.lower() not in _UPGRADE_TOKENS)
                if not value:
                    continue
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        return b"".join(head)
