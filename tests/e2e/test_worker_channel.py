"""The worker channel belongs to the run: a local process without the run's secret cannot take part.

The attacker is this test process; the host is a `render` in a child process with a real bpy worker.
It finds the host's sockets as any local process could (the loopback ports in /proc/net/tcp, or the
paths of Unix sockets in /proc/net/unix), keeps only those of the host under test (so nothing else on
the machine is touched; an attacker would simply try them all), and then does what a squatter would:
connects as the predictable workers `w0.1`, `w0.2` ..., says hello, forges heartbeats of a huge memory
use (which recycle a worker), and answers "ok" to whatever it is sent. The run must end complete with
every image, the attacker must never see a render request, and no forged heartbeat may count.

It plays a process without access to the run's own processes: reading a worker's environment
(/proc/PID/environ) needs the run's user or root, who could as well ptrace the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import zmq

from render_tag.cli.render import main_render
from render_tag_shared.messages import (
    Heartbeat,
    Hello,
    RenderReply,
    RenderRequest,
    decode_host_message,
    encode,
)

from .test_pool import (
    manifest,
    render_host,
    telemetry,
    tiny_recipe,
    wait_gone,
    worker_pids,
    write_recipes,
)

GUESSED_IDS = [f"w{slot}.{generation}" for slot in range(2) for generation in range(1, 7)]
"""The worker names a squatter would try: the slots of a small pool and their next generations."""
HUGE_RSS_MB = 1e6
RUN_LIMIT_S = 90.0
"""The run takes about 10 s; an attacker that holds it up longer has won too."""


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process `pid` holds (readable for the same user, as this test is)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[len("socket:[") : -1])
    return inodes


def loopback_listeners() -> dict[str, str]:
    """inode -> zmq endpoint of every socket listening on 127.0.0.1, from /proc/net/tcp."""
    found = {}
    with contextlib.suppress(OSError), open("/proc/net/tcp", encoding="ascii") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            address, port = local.split(":")
            if state == "0A" and address == "0100007F":  # LISTEN on 127.0.0.1
                found[inode] = f"tcp://127.0.0.1:{int(port, 16)}"
    return found


def unix_listeners() -> dict[str, str]:
    """inode -> zmq endpoint of every listening Unix socket with a path, from /proc/net/unix."""
    found = {}
    with contextlib.suppress(OSError), open("/proc/net/unix", encoding="ascii") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[5] == "01" and fields[7].startswith("/"):  # listening
                found[fields[6]] = f"ipc://{fields[7]}"
    return found


class Attacker:
    """A local process that knows nothing but what /proc shows every user, plus the output folder."""

    def __init__(self, host_pid: int, out: Path) -> None:
        self.host_pid, self.out = host_pid, out
        self.context = zmq.Context()
        self.endpoints: set[str] = set()
        self.dealers: list[tuple[str, zmq.Socket[bytes]]] = []
        self.pushers: list[zmq.Socket[bytes]] = []
        self.received: list[bytes] = []
        self.requests: list[RenderRequest] = []
        self.sent = 0

    def discover(self) -> None:
        mine = socket_inodes(self.host_pid)
        listening = loopback_listeners() | unix_listeners()
        for inode, endpoint in listening.items():
            if inode in mine and endpoint not in self.endpoints:
                self.endpoints.add(endpoint)
                self._attach(endpoint)

    def _attach(self, endpoint: str) -> None:
        """Every endpoint gets a heartbeat pusher and one DEALER per guessed worker identity."""
        pusher = self.context.socket(zmq.PUSH)
        pusher.setsockopt(zmq.LINGER, 0)
        pusher.setsockopt(zmq.SNDHWM, 100)
        pusher.connect(endpoint)
        self.pushers.append(pusher)
        for name in GUESSED_IDS:
            dealer = self.context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.SNDHWM, 100)
            dealer.setsockopt(zmq.ROUTING_ID, name.encode())
            dealer.connect(endpoint)
            self.dealers.append((name, dealer))

    def names(self) -> list[str]:
        """The guesses, and the worker names the run itself wrote into the output folder."""
        seen = {str(e["worker"]) for e in telemetry(self.out) if "worker" in e}
        return sorted(set(GUESSED_IDS) | seen)

    def strike(self) -> None:
        """One round: forged hellos and 'ok' replies on every DEALER, forged heartbeats for every name."""
        names = self.names()
        for name, dealer in self.dealers:
            hello = Hello(
                worker_id=name, pid=os.getpid(), blender_version="4.2", addon_version="0", python_version="3"
            )
            self._send(dealer, encode(hello))
            for job_index in range(4):
                reply = RenderReply(worker_id=name, job_index=job_index, status="ok", image_ids=[])
                self._send(dealer, encode(reply))
        for pusher in self.pushers:
            for name in names:
                beat = Heartbeat(
                    worker_id=name,
                    pid=os.getpid(),
                    rss_mb=HUGE_RSS_MB,
                    cpu_percent=0.0,
                    renders_done=1,
                    state="idle",
                    sent_at=time.time(),
                )
                self._send(pusher, encode(beat))

    def listen(self) -> None:
        """Whatever reaches a DEALER is the attacker's: a render request is answered 'ok' unrendered."""
        for name, dealer in self.dealers:
            while True:
                try:
                    data = dealer.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.received.append(data)
                request = self._read_request(data)
                if request is not None:
                    self.requests.append(request)
                    reply = RenderReply(
                        worker_id=name,
                        job_index=request.job_index,
                        attempt=request.attempt,
                        status="ok",
                        image_ids=[request.recipe.image_id(i) for i in range(len(request.recipe.cameras))],
                    )
                    self._send(dealer, encode(reply))

    @staticmethod
    def _read_request(data: bytes) -> RenderRequest | None:
        """A request in plain JSON, or behind a MAC it cannot check but can still read past."""
        for start in (0, 32):
            with contextlib.suppress(ValueError):
                message = decode_host_message(data[start:])
                if isinstance(message, RenderRequest):
                    return message
        return None

    def _send(self, socket: zmq.Socket[bytes], data: bytes) -> None:
        with contextlib.suppress(zmq.Again):
            socket.send(data, zmq.NOBLOCK)
            self.sent += 1

    def close(self) -> None:
        for _, dealer in self.dealers:
            dealer.close(0)
        for pusher in self.pushers:
            pusher.close(0)
        self.context.term()


def test_a_local_attacker_cannot_take_part_in_a_run(tmp_path: Path) -> None:
    recipes = [tiny_recipe(i, samples=16) for i in range(4)]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    host = render_host(path, out, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    attacker = Attacker(host.pid, out)
    deadline = time.monotonic() + RUN_LIMIT_S
    try:
        last_strike = 0.0
        while host.poll() is None and time.monotonic() < deadline:
            attacker.discover()
            attacker.listen()
            if attacker.dealers and time.monotonic() - last_strike > 0.1:
                attacker.strike()
                last_strike = time.monotonic()
            time.sleep(0.01)
        attacker.listen()
    finally:
        if host.poll() is None:
            host.send_signal(signal.SIGINT)  # the attacker held the run up: stop it, then judge
            with contextlib.suppress(subprocess.TimeoutExpired):
                host.communicate(timeout=30)
        if host.poll() is None:
            host.kill()
        out_text, err_text = host.communicate(timeout=30)
        attacker.close()

    assert attacker.endpoints and attacker.sent > 100, "the attack never reached the host's sockets"
    assert not attacker.requests, f"the attacker was sent {len(attacker.requests)} render request(s)"
    assert not attacker.received, "the attacker was sent a message"
    assert time.monotonic() < deadline, f"the attacker held the run up for {RUN_LIMIT_S} s"
    doc = manifest(out)
    missing = [
        image_id
        for job in doc["jobs"]
        for image_id in job["image_ids"]
        if not (out / "images" / f"{image_id}.png").is_file()
    ]
    assert not (doc["status"] == "complete" and missing), f"a run 'complete' without {missing}"
    assert host.returncode == 0 and doc["status"] == "complete" and not missing, (out_text, err_text)

    events = telemetry(out)
    forged = [e for e in events if e["event"] == "heartbeat" and e["rss_mb"] >= HUGE_RSS_MB]
    assert not forged, "a forged heartbeat was taken for the worker's"
    recycled = [e for e in events if e["event"] in ("worker_recycle", "worker_restart")]
    assert not recycled, f"the attacker made the host replace a worker: {recycled}"
    dropped = [e for e in events if e["event"] == "bad_message"]
    assert dropped, "the host never saw the forged messages (so the test proved nothing)"
    assert len(dropped) < 100, "a flood of forgeries must not flood the telemetry"
    assert wait_gone(worker_pids(out)) == []


def test_heartbeats_do_not_extend_a_render_past_its_timeout(tmp_path: Path) -> None:
    """The heartbeat thread keeps beating while the render thread is busy (or stuck): the render is
    still cut at `timeout_s` from when it was handed out, whatever the heartbeats say."""
    path = write_recipes(tmp_path / "slow.json", [tiny_recipe(0, samples=65536)])
    out = tmp_path / "out"
    code = main_render(
        path,
        out,
        workers=1,
        timeout_s=3.0,
        heartbeat_s=0.1,
        telemetry_every_s=0.1,
        retries=0,
        progress=False,
    )
    assert code == 1
    job = manifest(out)["jobs"][0]
    assert job["status"] == "failed" and job["error_type"] == "RenderTimeout"
    events = telemetry(out)
    beats = [e for e in events if e["event"] == "heartbeat" and e["state"] == "rendering"]
    assert len(beats) >= 10, "the worker's heartbeats did not flow during the render"
    restarts = [e for e in events if e["event"] == "worker_restart"]
    assert [e["reason"] for e in restarts] == ["render_timeout"]
    assert wait_gone(worker_pids(out)) == []


def test_the_secret_and_identities_stay_out_of_command_lines_and_logs(tmp_path: Path) -> None:
    """The run's key is in the workers' environment only: not in their argv (which every user can
    read in /proc), not in the settings JSON, not in telemetry nor the worker logs; the routing ids
    are random and unlogged (telemetry names a worker w<slot>.<generation>)."""
    from render_tag.batch.launcher import BpyModuleLauncher
    from render_tag.batch.options import WorkerLimits
    from render_tag.batch.pool import Job, JobOutcome, WorkerPool
    from render_tag.batch.telemetry import TelemetryLog

    out = tmp_path / "out"
    log = TelemetryLog(tmp_path / "telemetry.ndjson")
    launcher = BpyModuleLauncher()
    outcomes: list[JobOutcome] = []
    command_lines: list[bytes] = []
    environments: list[dict[str, Any]] = []
    identities: list[bytes] = []

    def on_start(job: Job, worker_id: str) -> None:
        process = pool.supervisor.slots[0].process
        assert process is not None
        identities.append(pool.supervisor.slots[0].identity)
        command_lines.append(Path(f"/proc/{process.pid}/cmdline").read_bytes())
        environments.append(process.settings.payload(launcher))

    with WorkerPool(launcher, WorkerLimits(), workers=1, log_dir=tmp_path / "logs", telemetry=log) as pool:
        key = pool.transport.key
        pool.run([Job(0, tiny_recipe(0), out), Job(1, tiny_recipe(1), out)], on_start, outcomes.append)
        other = WorkerPool(launcher, WorkerLimits(), workers=1)
        assert other.transport.key != key, "every run has a secret of its own"
        other.close()
    log.close()
    assert [o.status for o in outcomes] == ["done", "done"]
    assert len(key) == 32 and len(identities) == 2 and len(set(identities)) == 1
    identity = identities[0]
    assert len(identity) == 32 and identity != b"w0.1"
    assert command_lines and all(key.hex().encode() not in line for line in command_lines)
    assert all(key.hex() not in json.dumps(env) for env in environments)
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".png")
    assert key.hex().encode() not in written and key not in written
    assert identity not in written, "a worker's routing id was logged"
    names = [
        json.loads(line)["worker"]
        for line in (tmp_path / "telemetry.ndjson").read_text().splitlines()
        if json.loads(line)["event"] == "worker_started"
    ]
    assert names == ["w0.1"], names


def test_a_worker_of_another_protocol_says_so_at_start(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    """An older installed extension cannot open sealed messages: the launch program compares protocol
    versions before the worker starts, so the run fails at once, naming why (not after start-up
    timeouts). The host here claims protocol 1, as a host would whose add-on is newer than itself."""
    import render_tag.batch.launcher as launcher_module

    monkeypatch.setattr(launcher_module, "PROTOCOL_VERSION", 1)
    path = write_recipes(tmp_path / "recipes.json", [tiny_recipe(0)])
    out = tmp_path / "out"
    started = time.monotonic()
    assert main_render(path, out, workers=1, progress=False) == 1
    assert time.monotonic() - started < 120
    err = capsys.readouterr().err
    assert "no worker started" in err and "worker protocol" in err and "the host 1" in err, err
    assert not list((out / "images").glob("*.png"))
