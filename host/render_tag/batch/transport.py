"""The host's end of the worker protocol: two loopback ZeroMQ sockets on ports the OS picks.

A ROUTER sends each request to one chosen worker (by its identity) and receives its replies; a PULL
collects heartbeats. Ports are picked by the OS, so two jobs on one machine never collide. Messages are
the JSON models of `render_tag_shared.messages`; what does not decode is reported, never trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import zmq
from pydantic import ValidationError

from render_tag_shared.messages import (
    Heartbeat,
    Hello,
    RenderReply,
    RenderRequest,
    Shutdown,
    WorkerError,
    decode_worker_message,
    encode,
)

__all__ = ["LOOPBACK", "Transport", "WorkerMessage"]

LOOPBACK = "tcp://127.0.0.1"
WorkerMessage = Hello | RenderReply | WorkerError | Heartbeat
_T = TypeVar("_T")


class Transport:
    """The sockets, bound at construction; `close` releases them (and the ZeroMQ context)."""

    def __init__(self, on_bad_message: Callable[[bytes | None, str], None] | None = None) -> None:
        self._on_bad_message = on_bad_message
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.LINGER, 0)
        self.request_endpoint = f"{LOOPBACK}:{self.router.bind_to_random_port(LOOPBACK)}"
        self.beats = self.context.socket(zmq.PULL)
        self.beats.setsockopt(zmq.LINGER, 0)
        self.heartbeat_endpoint = f"{LOOPBACK}:{self.beats.bind_to_random_port(LOOPBACK)}"
        self.poller = zmq.Poller()
        self.poller.register(self.router, zmq.POLLIN)
        self.poller.register(self.beats, zmq.POLLIN)

    def send(self, identity: bytes, message: RenderRequest | Shutdown) -> bool:
        """False when the worker is not connected (EHOSTUNREACH) or gone: the caller restarts it."""
        try:
            self.router.send_multipart([identity, encode(message)], zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        return True

    def poll(self, timeout_ms: int) -> tuple[list[tuple[bytes, WorkerMessage]], list[Heartbeat]]:
        """Waits up to `timeout_ms` for traffic; returns every (sender, message) and heartbeat waiting."""
        events = dict(self.poller.poll(timeout_ms))
        replies: list[tuple[bytes, WorkerMessage]] = []
        beats: list[Heartbeat] = []
        if self.router in events:
            for frames in self._drain(self.router.recv_multipart):
                identity, data = frames[-2:]
                message = self._decode(data, identity)
                if message is not None:
                    replies.append((identity, message))
        if self.beats in events:
            for data in self._drain(self.beats.recv):
                beat = self._decode(data, None)
                if isinstance(beat, Heartbeat):
                    beats.append(beat)
        return replies, beats

    def close(self) -> None:
        self.router.close(0)
        self.beats.close(0)
        self.context.term()

    @staticmethod
    def _drain(receive: Callable[[int], _T]) -> Iterator[_T]:
        while True:
            try:
                yield receive(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _decode(self, data: bytes, identity: bytes | None) -> WorkerMessage | None:
        try:
            return decode_worker_message(data)
        except (ValidationError, ValueError) as exc:
            if self._on_bad_message is not None:
                self._on_bad_message(identity, str(exc)[:500])
            return None
