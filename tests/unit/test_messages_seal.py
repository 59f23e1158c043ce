"""Sealed worker messages: only the holder of the run's key makes a message the other end accepts."""

from __future__ import annotations

import pytest

from render_tag_shared.messages import (
    KEY_BYTES,
    MAC_BYTES,
    Heartbeat,
    Hello,
    RenderReply,
    Shutdown,
    Unauthenticated,
    encode,
    new_key,
    open_host_message,
    open_worker_message,
    seal,
)


def beat() -> Heartbeat:
    return Heartbeat(worker_id="w0.1", pid=7, rss_mb=1e6, cpu_percent=0.0, renders_done=1, state="idle")


def test_a_sealed_message_opens_with_the_runs_key_only() -> None:
    key = new_key()
    assert len(key) == KEY_BYTES and new_key() != key
    hello = Hello(worker_id="w0.1", pid=1, blender_version="4.2", addon_version="1", python_version="3")
    assert open_worker_message(seal(hello, key), key) == hello
    assert open_worker_message(seal(beat(), key), key) == beat()
    assert open_host_message(seal(Shutdown(reason="done"), key), key) == Shutdown(reason="done")
    with pytest.raises(Unauthenticated):
        open_worker_message(seal(beat(), key), new_key())


def test_forged_tampered_and_reflected_messages_are_refused() -> None:
    key = new_key()
    reply = RenderReply(worker_id="w0.1", job_index=0, status="ok", image_ids=["scene000000_cam00"])
    sealed = seal(reply, key)
    tampered = sealed.replace(b'"job_index":0', b'"job_index":1')
    assert tampered != sealed
    forged = [
        encode(reply),  # plain JSON, as the protocol before the MAC (and any local process) sends it
        b"\0" * MAC_BYTES + encode(reply),  # a made-up MAC
        tampered,
        sealed[:MAC_BYTES],  # a MAC and nothing else
        b"",
    ]
    for data in forged:
        with pytest.raises(Unauthenticated):
            open_worker_message(data, key)
    # The MAC names the direction: the host's own message sent back is not a worker's, and vice versa.
    with pytest.raises(Unauthenticated):
        open_worker_message(seal(Shutdown(), key), key)
    with pytest.raises(Unauthenticated):
        open_host_message(sealed, key)


def test_a_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal(beat(), b"short")
