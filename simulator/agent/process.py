"""The reference agent in a child process, for demos, soak runs and tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from simulator.errors import CallsimError


@dataclass(frozen=True)
class AgentProcess:
    url: str   # base URL of the text endpoint, ``http://127.0.0.1:PORT/v1``
    pid: int


@contextlib.contextmanager
def running_agent(*args: str) -> Iterator[AgentProcess]:
    """Start ``callsim agent serve --port 0 ARGS`` in a child process; yield where it
    listens and its pid; stop it on exit. Raises :class:`CallsimError` when it does not
    start within 30 s."""
    cmd = [sys.executable, "-m", "simulator", "agent", "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "http://" in line:
                url = line[line.index("http://"):].split()[0]
                break
        if url is None:
            raise CallsimError("reference agent did not start (run `callsim agent serve "
                               "--port 0` to see why)")
        yield AgentProcess(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def agent_process(*args: str) -> Iterator[str]:
    """:func:`running_agent`, yielding only its base URL."""
    with running_agent(*args) as agent:
        yield agent.url
