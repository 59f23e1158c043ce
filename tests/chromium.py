"""Opens a page in headless Chromium (Debian's `chromium`) over the DevTools protocol, as a person's
browser would: console errors, failed loads, the images' sizes and a full-page screenshot.

`make test` installs the package when it is missing (as root, as CI runs); without it the tests that
need it fail and say how to install it, never skip.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


def chromium_binary() -> str:
    """The Chromium on PATH; AssertionError with the install command when there is none."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("headless Chromium is needed: apt-get install -y chromium (make test installs it)")


@dataclass
class PageVisit:
    """What the page did: console errors and exceptions, failed loads, the evaluated probe, a screenshot."""

    errors: list[str] = field(default_factory=list)
    probe: Any = None
    screenshot: bytes = b""


class _DevTools:
    def __init__(self, url: str) -> None:
        import websocket  # websocket-client, a dev dependency

        self.socket = websocket.create_connection(url, timeout=30)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_for(self, method: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            self.events.append(message)
            if message.get("method") == method:
                return
        raise AssertionError(f"no {method} within {timeout_s} s")

    def close(self) -> None:
        self.socket.close()


def _error_events(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(
                "console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            errors.append("exception: " + str(params.get("exceptionDetails", {}).get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            errors.append(f"load failed: {params.get('errorText')} ({params.get('type')})")
    return errors


def visit(page: Path, probe_js: str, width: int = 1300) -> PageVisit:
    """Loads `page` (a local file), evaluates `probe_js` (an expression giving JSON) after the load
    event, and takes a full-page screenshot."""
    binary = chromium_binary()
    # Chromium's helpers (zygote, renderer, GPU) may still write into the profile for a moment after
    # the group is killed; the folder is temporary either way.
    with tempfile.TemporaryDirectory(prefix="rt-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the helpers go with it
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (port_file.is_file() and port_file.read_text().strip()):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(f"{binary} did not open its DevTools port (exit {process.poll()})")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.loads(answer.read())
            target = next(t for t in targets if t.get("type") == "page")
            tools = _DevTools(target["webSocketDebuggerUrl"])
            try:
                for domain in ("Page", "Runtime", "Log", "Network"):
                    tools.call(f"{domain}.enable")
                tools.call("Page.navigate", url=page.resolve().as_uri())
                tools.wait_for("Page.loadEventFired")
                result = tools.call(
                    "Runtime.evaluate", expression=probe_js, returnByValue=True, awaitPromise=True
                )
                probe = json.loads(result["result"]["value"])
                metrics = tools.call("Page.getLayoutMetrics")
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                shot = tools.call(
                    "Page.captureScreenshot",
                    format="png",
                    captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000), "scale": 1},
                )
                time.sleep(0.2)  # late console messages
                tools.socket.settimeout(0.2)
                try:
                    while True:
                        tools.events.append(json.loads(tools.socket.recv()))
                except Exception:  # the timeout: nothing more to read
                    pass
                return PageVisit(_error_events(tools.events), probe, base64.b64decode(shot["data"]))
            finally:
                tools.close()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
