"""Locust peer for ``scripts/bench_driver.py peer``: the same calls, timed the Locust way.

A FastHttpUser replays a call of ``BENCH_TURNS`` streaming Chat Completions turns,
``BENCH_PAUSE_S`` apart, and times the first chunk carrying content (``perf_counter_ns()``
before the request, and after the read that returned the first content bytes). Rows
finishing after the warm-up are written with the process CPU time to ``BENCH_LOCUST_OUT``.
This is the way a careful Locust user measures TTFT; it is not a benchmark by itself.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from locust import FastHttpUser, events, task

_now = time.perf_counter_ns
TURNS = int(os.environ.get("BENCH_TURNS", "6"))
PAUSE_S = float(os.environ.get("BENCH_PAUSE_S", "2.0"))
CYCLE_S = float(os.environ.get("BENCH_CYCLE_S", "2.65"))
WARM_S = float(os.environ.get("BENCH_WARM_S", "3.0"))
OUT = os.environ.get("BENCH_LOCUST_OUT", "locust_rows.json")
LINE = "Hi, I'd like to check the status of my order, it was placed last Tuesday I think."
# Small reads: geventhttpclient's read(n) waits for n bytes, so the default 1024 would
# stamp the first chunk only once ~1 KiB arrived. 64 is the fairest practical choice.
READ = int(os.environ.get("BENCH_LOCUST_READ", "64"))

ROWS: list[tuple[int, int, int, str]] = []
STATE: dict[str, Any] = {}


@events.test_start.add_listener
def _start(**_kw: Any) -> None:
    import gevent

    STATE["win0"] = _now() + int(WARM_S * 1e9)

    def mark() -> None:
        STATE["cpu0"] = time.process_time()

    gevent.spawn_later(WARM_S, mark)


@events.quitting.add_listener
def _quit(**_kw: Any) -> None:
    win0 = STATE.get("win0", 0)
    cpu = time.process_time() - STATE.get("cpu0", time.process_time())
    rows = [(s, f, t) for s, f, e, t in ROWS if e >= win0]
    with open(OUT, "w") as f:
        json.dump({"rows": rows, "cpu_s": cpu}, f)


class CallUser(FastHttpUser):
    def wait_time(self) -> float:
        return PAUSE_S

    def on_start(self) -> None:
        self._delay = random.uniform(0, CYCLE_S)

    @task
    def call(self) -> None:
        if self._delay:
            import gevent

            gevent.sleep(self._delay)
            self._delay = 0.0
        messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful agent."}]
        for turn in range(TURNS):
            if turn:
                import gevent

                gevent.sleep(PAUSE_S)
            messages.append({"role": "user", "content": LINE})
            body = json.dumps({"model": "callsim-reference", "messages": messages,
                               "stream": True, "stream_options": {"include_usage": True}})
            sent = _now()
            first = 0
            buf = bytearray()
            resp = self.client.post("/chat/completions", data=body, stream=True,
                                    headers={"Content-Type": "application/json",
                                             "Accept": "text/event-stream"})
            for chunk in resp.iter_content(chunk_size=READ, decode_content=False):
                buf += chunk
                if not first and b'"content":"r' in buf:
                    first = _now()
            ROWS.append((sent, first, _now(), buf.decode("utf-8", "replace")))
            messages.append({"role": "assistant", "content": "ok"})
