"""The host's end of the worker protocol: two loopback ZeroMQ sockets on ports the OS picks.

A ROUTER sends each request to one chosen worker (by its identity) and receives its replies; a PULL
collects heartbeats. Ports are picked by the OS, so two jobs on one machine never collide. Messages are
the JSON models of `render_tag_shared.messages`, sealed with the run's secret (`key`, new for every
Transport): any local process can connect to a loopback port, so a message without the run's MAC is
dropped unread, and what does not decode is reported, never trusted. Worker identities are random
tokens handed to each worker in its environment, so no other process can claim one.
"""

from __future__ import annotations

import secrets
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
    new_key,
    open_worker_message,
    seal,
)

__all__ = ["LOOPBACK", "Transport", "WorkerMessage", "new_identity"]

LOOPBACK = "tcp://127.0.0.1"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""A peer that sends more in one message is disconnected: no local process can make the host buffer
a gigabyte before its MAC is checked (a real reply is a few kB)."""
MAX_DRAIN = 1000
"""Messages read per socket per poll, so a flood cannot keep the loop from its health checks."""
WorkerMessage = Hello | RenderReply | WorkerError | Heartbeat
_T = TypeVar("_T")


class Transport:
    """The sockets, bound at construction; `close` releases them (and the ZeroMQ context)."""

    def __init__(self, on_bad_message: Callable[[bytes | None, str], None] | None = None) -> None:
        self._on_bad_message = on_bad_message
        self.key = new_key()
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.request_endpoint = f"{LOOPBACK}:{self.router.bind_to_random_port(LOOPBACK)}"
        self.beats = self.context.socket(zmq.PULL)
        self.beats.setsockopt(zmq.LINGER, 0)
        self.beats.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.heartbeat_endpoint = f"{LOOPBACK}:{self.beats.bind_to_random_port(LOOPBACK)}"
        self.poller = zmq.Poller()
        self.poller.register(self.router, zmq.POLLIN)
        self.poller.register(self.beats, zmq.POLLIN)

    def send(self, identity: bytes, message: RenderRequest | Shutdown) -> bool:
        """False when the worker is not connected (EHOSTUNREACH) or gone: the caller restarts it."""
        try:
            self.router.send_multipart([identity, seal(message, self.key)], zmq.NOBLOCK)
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
                if len(frames) != 2:
                    self._report(frames[0], f"a message of {len(frames) - 1} frames (dropped unread)")
                    continue
                identity, data = frames
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
        for _ in range(MAX_DRAIN):
            try:
                yield receive(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _decode(self, data: bytes, identity: bytes | None) -> WorkerMessage | None:
        try:
            return open_worker_message(data, self.key)
        except (ValidationError, ValueError) as exc:
            self._report(identity, str(exc)[:500])
            return None

    def _report(self, identity: bytes | None, error: str) -> None:
        if self._on_bad_message is not None:
            self._on_bad_message(identity, error)


def new_identity() -> bytes:
    """A worker's ZeroMQ identity: 128 random bits, so no other process can guess and claim it."""
    return secrets.token_hex(16).encode()
