"""A real Hub-compatible server on 127.0.0.1 for the tests: olah serving local git repositories.

olah (PyPI) is a self-hosted Hugging Face mirror; in offline mode it serves committed git repos
found under ``<mirrors>/models/<org>/<name>`` (branch ``main``; tags and commit hashes work as
revisions) through the Hub's own resolve/API routes, so ``huggingface_hub`` talks to it exactly
as to huggingface.co.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

GIT = ["git", "-c", "user.name=sips tests", "-c", "user.email=tests@sips.invalid", "-c", "commit.gpgsign=false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalHub:
    """Git repos + an olah process. ``url`` is the value for ``HF_ENDPOINT``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mirrors = root / "mirrors"
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def commit(self, repo_id: str, files: dict[str, Path | bytes], *, tag: str | None = None) -> str:
        """Commit ``files`` (path in repo -> source file or bytes) to ``repo_id``'s main; returns the hash."""
        repo = self.mirrors / "models" / repo_id
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True)
            subprocess.run([*GIT, "init", "-q", "-b", "main", str(repo)], check=True)
        for name, source in files.items():
            target = repo / name
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                shutil.copyfile(source, target)
        subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "commit", "-q", "-m", f"commit {tag or ''}"], check=True)
        if tag:
            subprocess.run([*GIT, "-C", str(repo), "tag", tag], check=True)
        out = subprocess.run([*GIT, "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def start(self, timeout: float = 60.0) -> LocalHub:
        """Start olah on a free port and wait until it answers."""
        cli = Path(sys.executable).with_name("olah-cli")
        if not cli.is_file():
            raise RuntimeError(f"olah is not installed next to {sys.executable} (it is in the dev extra)")
        for _attempt in range(3):
            self.port = _free_port()
            config = self.root / f"olah-{self.port}.toml"
            config.write_text(
                "[basic]\n"
                f'host = "127.0.0.1"\nport = {self.port}\n'
                f'repos-path = "{self.root / "olah-cache"}"\n'
                f'mirrors-path = ["{self.mirrors}"]\n'
                "[accessibility]\noffline = true\n"
            )
            log = open(self.root / f"olah-{self.port}.log", "wb")  # noqa: SIM115 (lives with the process)
            self.process = subprocess.Popen(
                [str(cli), "-c", str(config), "--log-path", str(self.root / "logs")],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return self
                except OSError:
                    time.sleep(0.2)
            self.stop()
        log_text = (self.root / f"olah-{self.port}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"olah did not start:\n{log_text}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
