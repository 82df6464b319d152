"""uvicorn's httptools protocol with the guards against slow or greedy clients that it lacks.

uvicorn bounds neither a request's head (the request line and headers: httptools buffers a header of
any length, and its cost grows with the square of it) nor the time a client takes to send it, nor the
time a response may wait on a client that reads nothing. One client could hold memory, a core or a
connection (a file descriptor) for as long as it liked. :class:`GuardedHttpToolsProtocol` adds, per
connection:

- a cap on a request's head, ``max_header_bytes``: past it, 431 and the connection closes;
- a deadline for the head, ``request_timeout`` seconds from its first byte (or from the connection's
  start): past it, 408 and the connection closes (a connection that sent nothing is just closed);
- a deadline on a blocked write, ``send_timeout``: while the socket's send buffer stays full (the
  client reads nothing) for that long, the connection is dropped and the request treated as a client
  that left (a stream's generation is cancelled, its slot freed);
- a client that closes its side is gone at once: what the app still sends is dropped rather than
  written to a closing socket (which uvloop refuses with a RuntimeError, logged as a server error);
- at a drain, a connection accepted before the listener closed (a moment after the signal) is taken in:
  its requests are marked so (``scope[TAKEN_IN]``), and the draining app answers them rather than
  refuse them 503; one that has not sent its first request yet gets ``FIRST_REQUEST_GRACE`` seconds for
  its line and headers, where uvicorn closed it unanswered, and is closed after its answer;
- an HTTP/1.0 client, which cannot read chunked transfer coding, gets an answer of unknown length (a
  stream) delimited by the connection's close, as HTTP/1.1 requires (RFC 9112, 6.3), where uvicorn's
  protocol sent it chunked.

The body's deadline is the app's (:class:`nextword.serve.limits.BodySizeLimit`), which can answer 408.
The settings are the app's: ``create_app`` puts its :class:`~nextword.serve.config.GuardSettings` in
the lifespan state uvicorn hands to every connection (without them, ``GuardSettings()``'s defaults
hold), with the function that counts the refusals made here in the app's metrics. ``nextword serve``
runs this protocol; for an app of ``create_app()`` under a uvicorn of one's own, pass
``http=GuardedHttpToolsProtocol``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .access import ACCESS, ANSWERED, CLIENT_LEFT, REFUSALS_STATE_KEY, STREAM_END, refused_line
from .config import ACCEPTING_STATE_KEY, GUARD_STATE_KEY, TAKEN_IN, GuardSettings
from .headers import COMMON_HEADERS
from .schemas import error_body

__all__ = ["GuardedHttpToolsProtocol"]

# At a drain, the seconds a connection taken in before it has to begin its first request (see shutdown)
FIRST_REQUEST_GRACE = 1.0


def _reply(status: str, message: str, code: str) -> bytes:
    """A whole answer, in the shape of the app's errors (OpenAI's), that closes the connection; with the
    security headers every answer of the app carries (serve/headers.py)."""
    body = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
    common = "".join(f"{name.decode()}: {value.decode()}\r\n" for name, value in COMMON_HEADERS)
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"connection: close\r\n{common}\r\n"
    )
    return head.encode("ascii") + body


def _close_delimited(cycle: Any) -> Callable[[Any], Awaitable[None]]:
    """The ``send`` of an HTTP/1.0 request's cycle: an answer without a length is written as it comes
    and ends with the connection (uvicorn closes it after an HTTP/1.0 answer), never chunked."""
    send = cycle.send
    unframed = False

    async def framed_send(message: Any) -> None:
        nonlocal unframed
        if message["type"] == "http.response.start" and not cycle.response_started:
            names = {bytes(name).lower() for name, _ in message.get("headers", [])}
            unframed = not names & {b"content-length", b"transfer-encoding"}
            if unframed:
                cycle.chunked_encoding = False  # uvicorn then writes no transfer-encoding header
        elif message["type"] == "http.response.body" and unframed:
            # uvicorn counts a body without chunks against a declared length: each part declares its own
            cycle.expected_content_length = len(message.get("body", b""))
        await send(message)

    return framed_send


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a cap on a request's head and deadlines for the head and for
    a write the client does not take (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        found = self.app_state.get(GUARD_STATE_KEY)
        self.guard = found if isinstance(found, GuardSettings) else GuardSettings()
        counter = self.app_state.get(REFUSALS_STATE_KEY)  # the app's metrics, where it has them
        self._count_refusal: Callable[[int], None] = counter if callable(counter) else lambda status: None
        self._in_head = True  # from a request's first byte (or the connection's start) to its headers' end
        self._head_bytes = 0  # bytes read since, at least the head's (a read may hold some body too)
        self._read = 0  # the size of the read being parsed
        self._ended_in_read = False  # whether a request's message ended earlier in that read
        self._head_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        # the request whose app runs now: self.cycle is the newest parsed, which may wait behind it
        self._running: Any = None
        # whether the server takes this connection in: its requests are answered though they come after a
        # drain began (ServerState.refuse_if_draining); a connection accepted after the drain closed the
        # listener (a moment's race at most) is not. Decided here, as the connection is accepted (uvloop
        # makes the protocol in the accept's own callback, asyncio a step later), not in connection_made,
        # a step or two on: a connection accepted just before the listener closed was taken for one
        # accepted after it, and its request answered 503 (1 in 400 over a SIGHUP restart's 2 workers)
        accepting = self.app_state.get(ACCEPTING_STATE_KEY)
        self._taken_in = callable(accepting) and bool(accepting())
        self._last_request = False  # the drain began before its first request: answer it, then close

    # ----------------------------------------------------------------- the head: size and deadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._send_timer = None
        self._gone()  # uvicorn marks only the newest request: one running before pipelined ones wrote on
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused or dropped: the rest of what the client sends is not read
            return
        self._read, self._ended_in_read = len(data), False
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # a head still unfinished past the cap: refused before httptools buffers more of it
        if (
            self._in_head
            and self._head_bytes > self.guard.max_header_bytes
            and not self.transport.is_closing()
        ):
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # the whole read counts, an upper bound, unless earlier requests ended in it (pipelined): then
        # what follows this read does, at most one read short (on_headers_complete checks the exact size)
        self._in_head, self._head_bytes = True, 0 if self._ended_in_read else self._read
        self._arm_head_timer()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():  # after a refused head, no request runs to take it
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._ended_in_read = True
        if not self.transport.is_closing():
            super().on_message_complete()

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn warns of every Upgrade header it does not act on, and advises installing a websocket
        # library: nextword serves no websocket (ws="none"), so the request is answered as plain HTTP
        # (RFC 9110 lets a server ignore Upgrade) with its access line, and nothing is wrong to warn of
        pass

    def send_400_response(self, msg: str) -> None:
        # bytes httptools cannot parse as HTTP: uvicorn warns without saying whose; the access line does
        if not self.transport.is_closing():
            self._answer_and_close(
                "400 Bad Request",
                "the request is not valid HTTP/1.1 or 1.0: its request line, a header or its chunked "
                "body is malformed",
                "invalid_http",
            )

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        # the head's exact size, for a head that came whole in one read past the cap
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.guard.max_header_bytes:
            self._refuse_head()
            return
        earlier, newest = self._running, self.cycle
        super().on_headers_complete()
        if self.cycle is newest:  # no request was made of this head (uvicorn answered it or dropped it)
            return
        if self._taken_in:
            self.cycle.scope[TAKEN_IN] = True  # type: ignore[literal-required]
        if self._last_request:
            self.cycle.keep_alive = False
        if self.cycle.scope.get("http_version") == "1.0":
            # read by run_asgi, which has not started: the method replaced on this one cycle (uvicorn's
            # types have no say in that)
            self.cycle.send = _close_delimited(self.cycle)  # type: ignore[method-assign, assignment]
        if earlier is None or earlier.response_complete:  # it runs now, rather than waiting behind one
            self._running = self.cycle

    def on_response_complete(self) -> None:
        done = self._running
        if self.pipeline:  # the next request waiting behind it runs now (uvicorn pops from the right)
            self._running = self.pipeline[-1][0]
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if done is not None and done.more_body:
            # answered before its body arrived (413, 401, a GET with a body): the rest is not waited for
            self.transport.close()
        elif not self.pipeline and not self._in_head:
            # the next request's head is due: blank lines between requests (which llhttp skips without
            # beginning a message) must not hold the connection past the deadline either
            self._in_head, self._head_bytes = True, 0
            self._arm_head_timer()

    # ----------------------------------------------------------------- a drain

    def shutdown(self) -> None:
        # uvicorn's drain closes a connection without a request running at once: one taken in that had
        # not sent its first request yet (accepted just before the drain closed the listener, its request
        # on the way) was closed unanswered. It gets FIRST_REQUEST_GRACE seconds for the request's line
        # and headers (a client that sends them slowly does not hold the drain longer), is answered, and
        # then closed.
        if self.cycle is None and self._taken_in and not self.transport.is_closing():
            self._last_request = True
            self.loop.call_later(FIRST_REQUEST_GRACE, self._close_unless_asked)
            return
        super().shutdown()

    def _close_unless_asked(self) -> None:
        if self.cycle is None and not self.transport.is_closing():  # no request's head came whole
            self.transport.close()

    def _refuse_head(self) -> None:
        self._answer_and_close(
            "431 Request Header Fields Too Large",
            f"the request line and headers are over {self.guard.max_header_bytes:,} bytes, this server's "
            "cap (nextword serve --max-header-bytes)",
            "headers_too_large",
        )

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.guard.request_timeout, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined head behind a response still running: its turn later
            return
        if self._head_bytes == 0:  # nothing sent: an idle connection, closed without an answer
            self.transport.close()
            return
        self._answer_and_close(
            "408 Request Timeout",
            f"the request line and headers did not arrive within {self.guard.request_timeout:g} s "
            "(nextword serve --request-timeout)",
            "request_timeout",
        )

    def _answer_and_close(self, status: str, message: str, code: str) -> None:
        self._in_head = False
        pending = [c for c in (self._running, self.cycle) if c is not None and not c.response_complete]
        if any(cycle.response_started for cycle in pending):
            # a response is still being written on this connection: the refusal cannot be answered
            self._refused(int(status[:3]), message)
            self._drop_client()
            return
        state = self.cycle.scope.get("state") if self.cycle in pending else None
        if isinstance(state, dict):
            # the request the app is reading (its chunked body is malformed) gets this answer, and its
            # access line (and count, serve/metrics.py) says so; the app's own answer goes nowhere
            state[ANSWERED] = (int(status[:3]), message)
        else:  # no request reached the app
            self._refused(int(status[:3]), message)
        self._gone()
        self.transport.write(_reply(status, message, code))
        self.transport.close()

    def _refused(self, status: int, why: str) -> None:
        """The access line and the count of a request refused before it reached the app: no middleware
        of the app sees it."""
        ACCESS.info(refused_line(self.client, status, why))
        self._count_refusal(status)

    # ----------------------------------------------------------------- writes the client does not take

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.guard.send_timeout, self._send_too_slow)

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().resume_writing()

    def _send_too_slow(self) -> None:
        self._send_timer = None
        if self._running is not None and not self._running.response_complete:
            # the request's access line says why its answer stopped (serve/access.py)
            state = self._running.scope.get("state")
            if isinstance(state, dict):
                state.setdefault(
                    STREAM_END,
                    f"answer cut: its client read nothing for {self.guard.send_timeout:g} s (--send-timeout)",
                )
        self._drop_client()

    # asyncio.Protocol's signature, whose True keeps the transport half-open; uvicorn's override says None
    def eof_received(self) -> bool | None:  # type: ignore[override]
        # The client closed its side: uvicorn closes the connection, and the app's writes then went to
        # a closing socket (uvloop raises there). Its requests are now ones whose client left (499), as
        # they are once the socket goes.
        self._gone()
        return super().eof_received()

    def _drop_client(self) -> None:
        """End the connection as if the client had gone: the request in flight hears of a disconnect
        (a stream cancels its generation), its blocked writes return, the socket is reset."""
        self._gone()
        self.flow.resume_writing()
        self.transport.abort()

    def _gone(self) -> None:
        """Mark the requests of this connection as left by their client: the app's writes are dropped,
        its reads get ``http.disconnect``."""
        for cycle in {id(c): c for c in (self._running, self.cycle) if c is not None}.values():
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
                state = cycle.scope.get("state")
                if isinstance(state, dict):  # an answer that begins now reaches no one: logged as 499
                    state[CLIENT_LEFT] = True
