"""The benchmark's model server, run in a child process so it never shares the client's GIL.

The child runs `agentlease.testing.ModelServer` with its default responder on 127.0.0.1 and
takes commands on stdin, one per line:

- ``requests``: print, as one JSON line, the Authorization header and the last user message of
  every request received since the last ``requests`` or ``reset``, then forget them. Send it
  only while no request is in flight, because a request that arrives between the read and the
  reset is lost.
- ``reset``: forget the recorded requests, which otherwise grow for the whole run.

End of input stops the server. `ServerProcess` starts the child and sends these commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["RecordedCall", "ServerProcess"]

ROOT = Path(__file__).resolve().parent.parent

RecordedCall = tuple[str, str]
"""The Authorization header and the last user message of one request the server received."""


class ServerProcess:
    """A `ModelServer` in a child process, with a line-based control channel on its stdin."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ServerProcess:
        """Start the child and wait until it prints the URL it listens on."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        line = self._stdout().readline()
        if not line:
            self.stop()
            raise RuntimeError("The model server process exited before printing its URL.")
        self.url = json.loads(line)["url"]
        return self

    def requests(self) -> list[RecordedCall]:
        """Return the calls received since the last `requests` or `reset`, and forget them."""
        self._send("requests")
        return [(auth, text) for auth, text in json.loads(self._stdout().readline())]

    def reset(self) -> None:
        """Forget the recorded requests."""
        self._send("reset")
        self._stdout().readline()

    def stop(self) -> None:
        """Close the child's stdin and wait for it to exit."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def _send(self, command: str) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()

    def _stdout(self) -> IO[str]:
        assert self._process is not None
        assert self._process.stdout is not None
        return self._process.stdout


def _last_user_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def main() -> None:
    """Serve until stdin closes, running the commands described in the module docstring."""
    from agentlease.testing import ModelServer

    with ModelServer() as server:
        print(json.dumps({"url": server.url}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "requests":
                recorded = server.requests
                server.reset()
                calls = [
                    (r.headers.get("authorization", ""), _last_user_text(r.json)) for r in recorded
                ]
                print(json.dumps(calls), flush=True)
            elif command == "reset":
                server.reset()
                print("{}", flush=True)


if __name__ == "__main__":
    main()
