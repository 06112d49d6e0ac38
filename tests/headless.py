"""Debian's Chromium, headless, driven over the Chrome DevTools protocol on a pipe.

``--remote-debugging-pipe`` makes Chromium read protocol messages from file descriptor 3 and write
its replies and events to descriptor 4, each a JSON text ended by a NUL byte: no port, no
websocket client, nothing from PyPI. Only Chromium from the system's packages is used
(``apt-get install chromium``; ``make test`` installs it when it is missing).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def find_chromium() -> str | None:
    """The path of the system's Chromium, or ``None``."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def _above_4(fd: int) -> int:
    """``fd`` moved to a number above 4 (close-on-exec), so that putting the pipe ends at 3 and 4 of
    the child never overwrites one another."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class ProtocolError(RuntimeError):
    """Chromium answered a command with an error, closed the pipe, or did not answer in time."""


class Chromium:
    """A headless Chromium with one page, as a context manager.

    ``events`` keeps every protocol event received (page and browser); ``send`` waits for the
    answer of one command; ``wait_for`` waits for an event. Downloads go to ``downloads``.
    """

    def __init__(self, workdir: Path, timeout: float = 30.0):
        self.workdir, self.timeout = Path(workdir), timeout
        self.downloads = self.workdir / "downloads"
        self.events: list[dict] = []
        self._buffer, self._next_id, self.session = b"", 0, None

    def __enter__(self) -> Chromium:
        binary = find_chromium()
        if binary is None:
            raise ProtocolError("chromium is not installed")
        self.downloads.mkdir(parents=True, exist_ok=True)
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()
        to_child, from_child = _above_4(to_child), _above_4(from_child)
        flags = [
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={self.workdir / 'profile'}",
            "--disable-gpu",
            "--mute-audio",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
        ]
        if os.geteuid() == 0:  # Chromium's sandbox refuses to run as root
            flags.append("--no-sandbox")
        log = _above_4(os.open(self.workdir / "chromium.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        try:  # the pipe ends become descriptors 3 and 4 of Chromium; its output goes to the log
            actions = [(os.POSIX_SPAWN_DUP2, to_child, 3), (os.POSIX_SPAWN_DUP2, from_child, 4)]
            actions += [(os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)]
            self.pid = os.posix_spawn(binary, [binary, *flags, "about:blank"], os.environ, file_actions=actions)
        finally:
            for fd in (to_child, from_child, log):
                os.close(fd)
        try:
            targets = self.send("Target.getTargets")["targetInfos"]
            page = next(t["targetId"] for t in targets if t["type"] == "page")
            self.session = self.send("Target.attachToTarget", {"targetId": page, "flatten": True})["sessionId"]
            self.send(
                "Browser.setDownloadBehavior",
                {"behavior": "allow", "downloadPath": str(self.downloads), "eventsEnabled": True},
                browser=True,
            )
            for domain in ("Runtime", "Log", "Page", "Network"):
                self.send(f"{domain}.enable")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            os.write(self._to_browser, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        end = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.05)
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)

    # --- protocol -------------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None, browser: bool = False) -> dict:
        """Send a command (to the page's session unless ``browser``) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session is not None and not browser:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        answer = self._receive(lambda m: m.get("id") == self._next_id, f"answer to {method}")
        if "error" in answer:
            raise ProtocolError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def wait_for(self, method: str, seen: int = 0, match=None, timeout: float | None = None) -> dict:
        """The first event ``method`` (whose params satisfy ``match``, if given) among the events from
        index ``seen`` on, waiting for it if it has not come yet."""

        def wanted(message: dict) -> bool:
            return message.get("method") == method and (match is None or match(message.get("params", {})))

        for event in self.events[seen:]:
            if wanted(event):
                return event
        return self._receive(wanted, method, timeout)

    def _receive(self, wanted, what: str, timeout: float | None = None) -> dict:
        end = time.monotonic() + (timeout or self.timeout)
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = end - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"no {what} from Chromium within {timeout or self.timeout} s")
            if select.select([self._from_browser], [], [], min(left, 0.5))[0]:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise ProtocolError(f"Chromium closed the pipe while we waited for {what}")
                self._buffer += chunk

    # --- page helpers ---------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate the page to ``url`` and wait for its load event."""
        seen = len(self.events)
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise ProtocolError(f"cannot open {url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired", seen)

    def evaluate(self, expression: str, timeout: float | None = None):
        """The value of a JavaScript expression in the page (promises are awaited)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if timeout is not None:
            params["timeout"] = timeout * 1000
        result = self.send("Runtime.evaluate", params)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise ProtocolError(f"the page raised: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (failed loads, CSP) so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("exception", {}).get("description", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"{params['entry'].get('text')} ({params['entry'].get('url', '')})")
        return found

    def requested_urls(self) -> list[str]:
        """Every URL the page requested."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def download(self, click: str) -> Path:
        """Run ``click`` (JavaScript that starts a download) and return the downloaded file."""
        seen = len(self.events)
        self.evaluate(click)
        begin = self.wait_for("Browser.downloadWillBegin", seen)["params"]
        finished = self.wait_for(
            "Browser.downloadProgress", seen, lambda p: p["guid"] == begin["guid"] and p["state"] != "inProgress"
        )["params"]
        if finished["state"] != "completed":
            raise ProtocolError(f"the download of {begin['suggestedFilename']} was {finished['state']}")
        return self.downloads / begin["suggestedFilename"]
