"""Event-loop lag monitor: how late the loop runs a callback that asked to wake on time.

A task wakes on an absolute grid (``next += interval``) and records ``actual - scheduled``
with ``time.perf_counter_ns()``. Lag is the error bar on every timestamp the driver takes
in that loop: a 30 ms lag means a first token may be stamped up to 30 ms late. The monitor
says in one sentence whether a run's latencies can be trusted.
"""

from __future__ import annotations

import asyncio
import math
import time
from types import TracebackType

from simulator.histogram import LatencyHistogram

DEFAULT_THRESHOLD_MS = 5.0


def _fmt_ms(ms: float) -> str:
    return f"{ms:.1f}" if ms < 10 else f"{ms:.0f}"


def lag_verdict(p99_ms: float, threshold_ms: float = DEFAULT_THRESHOLD_MS) -> str:
    """The human sentence for a loop-lag p99 (also usable on histograms merged across workers)."""
    if math.isnan(p99_ms):
        return "loop lag not measured: latencies cannot be vouched for"
    if p99_ms <= threshold_ms:
        return f"loop lag p99 {_fmt_ms(p99_ms)} ms: latencies trustworthy"
    shown = _fmt_ms(p99_ms)
    return (
        f"loop lag p99 {shown} ms exceeds {threshold_ms:g} ms: latencies below "
        f"~{shown} ms resolution are not trustworthy; reduce concurrency or add workers"
    )


class LoopLagMonitor:
    """Measures the running event loop's lag every ``interval_s`` seconds.

    ``start()`` inside a running loop (or ``async with LoopLagMonitor() as lag:``), ``await
    stop()`` at the end. ``current_ms`` is the latest lag, for tagging samples; ``histogram``
    holds every lag (ms) and merges across workers. A stall of k intervals is recorded with
    HdrHistogram's coordinated-omission correction (the k probes that could not run count as
    late too), so p99 reflects the time the loop was unresponsive, not just one sample.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.histogram = LatencyHistogram()
        self.current_ms = 0.0
        self._max_ns = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start probing the running loop. Raises ``RuntimeError`` outside a running loop."""
        if self.running:
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._probe(), name="callsim-loop-lag")

    async def stop(self) -> None:
        """Stop probing and wait for the probe task to end; the numbers stay readable."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # Our own cancel; re-raise only if *we* are being cancelled too.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def __aenter__(self) -> LoopLagMonitor:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _probe(self) -> None:
        interval_ns = round(self.interval_s * 1e9)
        interval_ms = interval_ns / 1e6
        deadline = time.perf_counter_ns() + interval_ns
        while True:
            await asyncio.sleep(max(deadline - time.perf_counter_ns(), 0) / 1e9)
            now = time.perf_counter_ns()
            # The loop may run a timer up to its clock resolution early; that is not lag.
            lag_ns = max(now - deadline, 0)
            self.current_ms = lag_ns / 1e6
            if lag_ns > self._max_ns:
                self._max_ns = lag_ns
            self.histogram.record_corrected_ms(self.current_ms, interval_ms)
            # Stay on the absolute grid; skip the grid points that passed during a stall
            # (they were accounted for by the corrected record above).
            deadline += interval_ns
            if deadline <= now:
                deadline += ((now - deadline) // interval_ns + 1) * interval_ns

    @property
    def samples(self) -> int:
        """Number of lag values recorded (including stall corrections)."""
        return self.histogram.count

    def p99_ms(self) -> float:
        """99th percentile lag in ms; NaN before the first probe."""
        return self.histogram.percentile_ms(99.0)

    def max_ms(self) -> float:
        """Largest lag seen, in ms (exact, not histogram-rounded); 0 before the first probe."""
        return self._max_ns / 1e6

    def trusted(self, threshold_ms: float = DEFAULT_THRESHOLD_MS) -> bool:
        """True when lag p99 is at most ``threshold_ms`` (False when nothing was measured)."""
        p99 = self.p99_ms()
        return not math.isnan(p99) and p99 <= threshold_ms

    def verdict(self, threshold_ms: float = DEFAULT_THRESHOLD_MS) -> str:
        """One sentence for the run summary, e.g. ``loop lag p99 1.2 ms: latencies trustworthy``."""
        return lag_verdict(self.p99_ms(), threshold_ms)
