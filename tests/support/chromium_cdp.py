"""Drive Debian's headless ``chromium`` through the DevTools protocol, with no extra package.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands (JSON, each ended
by a NUL byte) on file descriptor 3 and writes replies and events on descriptor 4. A
reader thread files replies by id and keeps every event, so a test can ask what the page
logged and which addresses it requested.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The Debian ``chromium`` binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium and one page (a tab) in it."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child's ends, moved above 9 so bash can renumber them to 3 and 4 safely.
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        command = [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        renumber = f'exec "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-'
        self.process = subprocess.Popen(
            ["bash", "-c", renumber, "bash", *command, "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(child_r, child_w),
        )
        os.close(child_r)
        os.close(child_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._changed:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command (to the page when ``session``) and wait for its reply."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        with self._changed:
            if not self._changed.wait_for(
                lambda: self._next_id in self._replies or not self._reader.is_alive(),
                self.timeout,
            ):
                raise TimeoutError(f"no reply to {method} in {self.timeout}s")
        reply = self._replies.pop(self._next_id, None)
        if reply is None:
            raise RuntimeError(f"chromium exited before replying to {method}")
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page."""
        return self.call(method, session=True, **params)

    def wait_for_event(self, method: str, after: int) -> dict[str, Any]:
        """The first event ``method`` among the events from index ``after`` on."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events[after:] if e["method"] == method), None)

        with self._changed:
            if not self._changed.wait_for(
                lambda: found() is not None or not self._reader.is_alive(), self.timeout
            ):
                raise TimeoutError(f"no {method} in {self.timeout}s")
        event = found()
        if event is None:
            raise RuntimeError(f"chromium exited before {method}")
        return event

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        reply = self.page(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression!r} raised: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=5)
        os.close(self._from_browser)
