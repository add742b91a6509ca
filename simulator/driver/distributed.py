"""Scale-out on Ray: N shard workers replaying one run into one run store.

Each worker is a Ray async actor running the same asyncio driver as a single-process run
(:class:`simulator.driver.runner.ShardRunner`) on its shard of the calls: call i goes to
worker ``i % N`` (``split_schedule`` semantics), every worker starts call i at the shared
start time plus ``offsets[i]`` of the ONE seeded schedule, so N workers replay the same
arrival process as one. Finished calls stream back every ``poll_s`` into the run store
through the same :class:`StoreSink`; a worker that dies is reported and its unfinished calls
are left for ``callsim run --resume``. Ray is optional: ``pip install 'callsim[ray]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from simulator import __version__
from simulator.agent_profile import AgentProfile
from simulator.callscript import CallScript
from simulator.driver.looplag import LoopLagMonitor, lag_verdict
from simulator.driver.runner import (
    CallRecord,
    Progress,
    RunConfig,
    RunControls,
    ShardRunner,
    StoreSink,
    begin_run,
    finish_run,
    make_transport,
    plan,
    relay_notice,
    run_load,
    run_total,
)
from simulator.errors import CallsimError, InputError
from simulator.histogram import LatencyHistogram
from simulator.personas import Pack
from simulator.storage.store import RunStore
from simulator.tools.relay import start_forwarding_relay
from simulator.transports.registry import transport_spec

RAY_HINT = "pip install 'callsim[ray]'"
# How long before the shared start time the driver hands out the shards: enough for the
# ``start`` message to reach every actor, on one machine or across a cluster.
START_LEAD_S = 1.0
# A worker whose ``drain`` keeps failing this long (unreachable, not known dead) is lost.
UNREACHABLE_S = 30.0
# Every this many polls a worker also sends its loop-lag histogram, so a worker that dies
# later still contributes the lag it measured.
LAG_EVERY_POLLS = 25

log = logging.getLogger(__name__)


def import_ray() -> Any:
    """The ``ray`` module; raises ``InputError`` (one line) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(f"running on several workers needs Ray, which is not installed: "
                         f"{RAY_HINT}") from None
    return ray


# ----------------------------------------------------------------------------- pure part
def shard_indices(indices: list[int], n_workers: int) -> list[list[int]]:
    """Deal call indices to workers: call i goes to worker ``i % n_workers`` (the rule of
    :func:`simulator.driver.arrivals.split_schedule`), keeping their order."""
    if n_workers < 1:
        raise InputError(f"bad number of workers {n_workers}: must be >= 1")
    shards: list[list[int]] = [[] for _ in range(n_workers)]
    for i in indices:
        shards[i % n_workers].append(i)
    return shards


def split_evenly(total: int, n_workers: int) -> list[int]:
    """``total`` split into ``n_workers`` integers differing by at most one (first ones larger)."""
    q, r = divmod(total, n_workers)
    return [q + (1 if k < r else 0) for k in range(n_workers)]


def shard_config(config: RunConfig, worker: int, n_workers: int) -> RunConfig:
    """The run config one worker runs under: global budgets split across the workers.

    Closed-loop concurrency and the open-loop ``max_active`` cap are split so the workers
    together hold the configured number in flight; rate caps are divided evenly (each
    worker throttles its own share, to whole calls per second).
    Raises ``InputError`` when the concurrency cannot give every worker at least one call.
    """
    arrival = config.arrival
    changes: dict[str, Any] = {}
    if arrival.closed_loop:
        conc = arrival.concurrency or 1
        if conc < n_workers:
            raise InputError(f"closed loop: --concurrency {conc} cannot be split over "
                             f"{n_workers} workers (each needs at least one call in flight)")
        changes["arrival"] = dataclasses.replace(
            arrival, concurrency=split_evenly(conc, n_workers)[worker])
    if config.max_active:
        changes["max_active"] = max(1, split_evenly(config.max_active, n_workers)[worker])
    if config.max_starts_per_s:
        changes["max_starts_per_s"] = config.max_starts_per_s / n_workers
    if config.max_requests_per_s:
        changes["max_requests_per_s"] = config.max_requests_per_s / n_workers
    if transport_spec(config.transport).tool_relay:
        # The agent posts its tools to the driver's relay, on the address it was given; each
        # worker serves its own calls' relay on a free port, and the driver's passes each
        # request on to the worker holding the call (a second worker could not bind the
        # same port: it failed before its first call).
        changes["tools_port"] = 0
        changes["tools_host"] = worker_relay_host(config.tools_host)
    return dataclasses.replace(config, **changes) if changes else config


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def worker_relay_host(tools_host: str) -> str:
    """Where a worker's own relay listens: on loopback when the run's relay is (workers on
    this machine), else on every address of the worker's node, for the driver to reach."""
    return tools_host if tools_host in LOOPBACK else "0.0.0.0"


# ----------------------------------------------------------------------------- the worker
class ShardWorker:
    """The body of one Ray actor (wrapped with ``ray.remote`` at run time, so this module
    imports without Ray). It runs a :class:`ShardRunner` on its own event loop and buffers
    finished calls until the driver drains them."""

    def __init__(self, worker: int, calls: list[CallScript], packs: dict[str, Pack],
                 config: RunConfig, agent: AgentProfile, api_key: str | None,
                 offsets: np.ndarray | None, n_warm: int) -> None:
        self.worker = worker
        # Import what the first call would import lazily, so that import does not stall the
        # event loop (and show up as loop lag) in the middle of the run.
        import simulator.degradation.faults  # noqa: F401
        from simulator.transports.registry import transport_spec

        transport_spec(config.transport)

        # Ray starts workers at nice 15; a worker is a timing loop and must not lose the
        # CPU to every other process on the node. Lowering niceness needs privileges (or
        # RAY_worker_niceness=0 on the cluster); without them the worker runs as started.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        self.runner = ShardRunner(calls, packs, config, agent=agent, api_key=api_key,
                                  offsets=offsets, n_warm=n_warm)
        self.results: list[CallRecord] = []
        self.stop_event: asyncio.Event | None = None
        self.task: asyncio.Task[bool] | None = None
        self.sent = 0
        self.cpu0 = time.process_time()

    async def ready(self) -> dict[str, Any]:
        """Where this worker runs, once it is ready to start on time.

        Opens (and closes) one connection to the target first, so the first-use costs of
        the transport stack fall before the shared start time, not on the first calls.
        """
        transport = make_transport(self.runner.config, self.runner.api_key)
        try:
            with contextlib.suppress(Exception):  # a dead target shows in the calls
                await transport.warmup(1)
        finally:
            with contextlib.suppress(Exception):
                await transport.aclose()
        relay_url = None
        if self.runner.spec.tool_relay:
            await self.runner.start_relay(announce=False)
            relay_url = self.runner.relay_url
            if relay_url is not None and self.runner.config.tools_host not in LOOPBACK:
                import ray

                port = relay_url.rsplit(":", 1)[1]
                relay_url = f"http://{ray.util.get_node_ip_address()}:{port}"
        return {"worker": self.worker, "host": socket.gethostname(), "pid": os.getpid(),
                "nice": os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority")
                else None, "relay_url": relay_url}

    async def start(self, indices: list[int], t0_wall_ns: int, resume_base_s: float) -> None:
        """Start replaying ``indices``; call i starts at wall-clock ``t0_wall_ns`` +
        ``offsets[i]`` - ``resume_base_s``, converted once to this process's perf clock."""
        t0 = time.perf_counter_ns() + (t0_wall_ns - time.time_ns())
        self.cpu0 = time.process_time()
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(
            self.runner.run(indices, t0, self._sink, self.stop_event,
                            resume_base_s=resume_base_s))

    def _sink(self, r: CallRecord) -> None:
        # Not ``self.results.append``: drain() swaps the list, the sink must follow.
        self.results.append(r)

    async def drain(self, with_lag: bool = False) -> dict[str, Any]:
        """Hand over the calls finished since the last drain, the calls in flight, the CPU
        seconds spent since ``start`` and, when the run is over (or ``with_lag``), the
        loop-lag histogram."""
        out, self.results = self.results, []
        self.sent += len(out)
        task = self.task
        done = task is not None and task.done()
        reply: dict[str, Any] = {"results": out, "active": self.runner.active,
                                 "started": self.runner.started_calls,
                                 "lag_ms": self.runner.lag.current_ms, "done": done,
                                 "cpu_s": time.process_time() - self.cpu0,
                                 "interrupted": False, "error": None}
        if done and task is not None:
            if task.cancelled():
                reply["error"] = "cancelled"
            elif task.exception() is not None:
                exc = task.exception()
                reply["error"] = f"{type(exc).__name__}: {exc}"
            else:
                reply["interrupted"] = task.result()
        if done or with_lag:
            reply["lag"] = self.runner.lag.histogram.encode()
        return reply

    async def stop(self) -> None:
        """Stop starting calls; calls in flight get the run's grace period."""
        if self.stop_event is not None:
            self.stop_event.set()


@dataclasses.dataclass
class _WorkerState:
    worker: int
    handle: Any
    assigned: int
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    finished: int = 0
    started: int = 0
    active: int = 0
    lag_ms: float = 0.0
    lag: str | None = None
    status: str = "running"  # running | done | died | failed
    interrupted: bool = False
    error: str | None = None
    unreachable_since: float | None = None
    in_flight_at_loss: int | None = None
    cpu_s: float = 0.0

    def report(self) -> dict[str, Any]:
        return {"worker": self.worker, "host": self.info.get("host"),
                "pid": self.info.get("pid"), "nice": self.info.get("nice"),
                "status": self.status,
                "assigned": self.assigned, "finished": self.finished,
                "in_flight_at_loss": self.in_flight_at_loss, "error": self.error,
                "cpu_s": round(self.cpu_s, 3)}


class _Fleet:
    """What the progress line reads: calls in flight across all live workers."""

    def __init__(self, states: list[_WorkerState]) -> None:
        self.states = states

    @property
    def active(self) -> int:
        return sum(s.active for s in self.states if s.status == "running")


# ----------------------------------------------------------------------------- the driver
async def run_distributed(
    calls: list[CallScript],
    packs: dict[str, Pack],
    config: RunConfig,
    run_dir: Path,
    *,
    workers: int,
    ray_address: str | None = None,
    agent: AgentProfile | None = None,
    api_key: str | None = None,
    resume: bool = False,
    progress_out: Any = None,
    progress_every_s: float = 5.0,
    poll_s: float = 0.2,
    use_ray: bool | None = None,
) -> dict[str, Any]:
    """Replay ``calls`` per ``config`` on ``workers`` Ray actors into the store at ``run_dir``.

    Same contract as :func:`simulator.driver.runner.run_load` (returns the run summary, also
    written to ``summary.json``; ``resume`` runs only the calls not yet stored; Ctrl-C stops
    arrivals on every worker). One worker without ``ray_address`` is a plain in-process run
    unless ``use_ray`` is True (``use_ray=None``: Ray iff ``workers > 1`` or an address).
    ``ray_address`` joins an existing cluster (``auto``, ``ray://host:10001``...); otherwise a
    local Ray instance is started for the run and shut down after it. If Ray is already
    initialised in this process, that instance is used as is. The summary gains a
    ``workers`` list (host, status, calls assigned/finished, calls in flight when lost).

    Raises ``InputError`` when Ray is missing or the run cannot be split as asked.
    """
    if workers < 1:
        raise InputError(f"bad number of workers {workers}: must be >= 1")
    if use_ray is None:
        use_ray = workers > 1 or ray_address is not None
    if not use_ray:
        return await run_load(calls, packs, config, run_dir, agent=agent, api_key=api_key,
                              resume=resume, progress_out=progress_out,
                              progress_every_s=progress_every_s)
    ray = import_ray()
    for k in range(workers):  # fail on a bad split before starting anything
        shard_config(config, k, workers)
    agent = agent or AgentProfile(model=config.model)
    store = RunStore(run_dir, create=True, redact=(api_key,) if api_key else ())
    offsets, total, n_warm = plan(calls, config)
    done_before = store.completed_indices() if resume else set()
    # The same meta as run_load writes (a run on N workers must read like a run on one),
    # plus how it was spread.
    begin_run(store, calls, config, agent, run_dir, total, resume, workers=workers,
              ray_address=ray_address)
    todo = [i for i in range(total) if i not in done_before]
    shards = shard_indices(todo, workers)
    # finish_run merges these with what an earlier part of a resumed run recorded.
    lags: list[LatencyHistogram] = []
    if not todo:  # a resume of a run with nothing left to do
        sink = StoreSink(store, Progress(total=total, done=len(done_before)))
        lag_hist = LatencyHistogram.merged(lags)
        p99 = lag_hist.percentile_ms(99.0)
        return finish_run(store, run_dir, total, sink, False, lag_hist, p99, lag_verdict(p99))
    base = float(offsets[todo[0]]) if (resume and todo and offsets is not None) else 0.0

    progress = Progress(total=total, done=len(done_before), lag=LoopLagMonitor())
    sink = StoreSink(store, progress)
    states: list[_WorkerState] = []
    front: Any = None  # the agent's tool relay, in front of the workers' own
    controls = RunControls()
    stop = controls.stop
    # Ctrl-C from here on (Ray's start-up takes seconds) stops the run cleanly.
    controls.install()
    started_ray = False
    try:
        if not ray.is_initialized():
            # Our private instance: start its workers at normal priority (see ShardWorker).
            # The raylet reads it from its environment at start; restored right after.
            saved = os.environ.get("RAY_worker_niceness")
            os.environ.setdefault("RAY_worker_niceness", "0")
            try:
                ray.init(address=ray_address, include_dashboard=False,
                         logging_level=logging.WARNING, configure_logging=False)
                started_ray = True
            finally:
                if saved is None:
                    os.environ.pop("RAY_worker_niceness", None)
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        # One worker = one core; on a cluster with fewer cores than workers, they share.
        per_cpu = 1.0 if cpus >= workers else max(cpus / workers, 0.01)
        actor_cls = ray.remote(ShardWorker)
        calls_ref, packs_ref, offsets_ref = ray.put(calls), ray.put(packs), ray.put(offsets)
        for k in range(workers):
            handle = actor_cls.options(
                name=actor_name(run_dir, k), num_cpus=per_cpu, max_concurrency=64,
                max_restarts=0, max_task_retries=0,
            ).remote(k, calls_ref, packs_ref, shard_config(config, k, workers), agent, api_key,
                     offsets_ref, n_warm)
            states.append(_WorkerState(k, handle, len(shards[k])))
        try:
            infos = await asyncio.gather(*(s.handle.ready.remote() for s in states))
        except ray.exceptions.RayError as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise CallsimError(f"Ray workers could not start (is callsim {__version__} "
                               f"installed on every node?): {why[:300]}") from None
        for s, info in zip(states, infos, strict=True):
            s.info = info
        if transport_spec(config.transport).tool_relay:
            front = await _front_relay(config, shards, states)
        controls.start_printer(progress, _Fleet(states), progress_every_s, progress_out)
        t0_wall = time.time_ns() + int(START_LEAD_S * 1e9)
        await asyncio.gather(*(s.handle.start.remote(shards[s.worker], t0_wall, base)
                               for s in states))
        late_ms = (time.time_ns() - t0_wall) / 1e6
        if late_ms > 0:
            _say(progress_out, f"workers confirmed the start {late_ms:.0f} ms after the shared "
                               "start time; the first calls show it as dispatch delay")
        await _collect(ray, states, sink, progress, stop, poll_s, progress_out)
    finally:
        await controls.close()
        if front is not None:
            await front.close()
        for s in states:
            with contextlib.suppress(Exception):
                ray.kill(s.handle)
        if started_ray:
            ray.shutdown()

    lags += [LatencyHistogram.decode(s.lag) for s in states if s.lag]
    lag_hist = LatencyHistogram.merged(lags)
    lag_p99 = lag_hist.percentile_ms(99.0)
    report = [s.report() for s in states]
    store.set_meta(workers_report=report)
    interrupted = stop.is_set() or any(s.interrupted for s in states)
    # A worker that failed or was lost did not run all it was given: the run is not whole
    # (partial, to be finished with --resume), even when --duration ended its arrivals.
    lost = any(s.status in ("failed", "died") for s in states)
    total = run_total(store, config, offsets, interrupted or lost, total,
                      len(done_before) + sum(s.started for s in states))
    summary = finish_run(store, run_dir, total, sink, interrupted, lag_hist, lag_p99,
                         lag_verdict(lag_p99))
    summary["workers"] = report
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


async def _front_relay(config: RunConfig, shards: list[list[int]],
                       states: list[_WorkerState]) -> Any:
    """The relay the agent posts its tools to (``--tools-host``/``--tools-port``), passing
    each request on to the relay of the worker holding the call (a call's id is its index,
    six digits)."""
    holder = {i: s.info.get("relay_url") for s in states for i in shards[s.worker]}

    def route(call_id: str) -> str | None:
        return holder.get(int(call_id)) if call_id.isdigit() else None

    token = config.tools_token()
    front = await start_forwarding_relay(route, config.tools_port, config.tools_host, token)
    print(relay_notice(front.url, token), file=sys.stderr, flush=True)
    return front


def actor_name(run_dir: Path, worker: int) -> str:
    """The Ray actor name of one worker of a run (``ray.get_actor`` finds it; the Ray
    dashboard shows it)."""
    return f"callsim:{run_dir.name}:w{worker}"


async def _collect(ray: Any, states: list[_WorkerState], sink: StoreSink, progress: Progress,
                   stop: asyncio.Event, poll_s: float, out: Any) -> None:
    """Poll every live worker until all are done or lost, streaming results into ``sink``."""
    stop_sent = False
    polls = 0
    while any(s.status == "running" for s in states):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll_s):
                await stop.wait()
        if stop.is_set() and not stop_sent:
            stop_sent = True
            for s in states:
                if s.status == "running":
                    s.handle.stop.remote()
        polls += 1
        live = [s for s in states if s.status == "running"]
        with_lag = polls % LAG_EVERY_POLLS == 0
        replies = await asyncio.gather(
            *(_drain(s, with_lag, max(10 * poll_s, 5.0)) for s in live), return_exceptions=True)
        for s, reply in zip(live, replies, strict=True):
            if isinstance(reply, BaseException):
                _missed(ray, s, reply, out)
                continue
            s.unreachable_since = None
            results: list[CallRecord] = reply["results"]
            if results:
                # One job on the store's writer thread per poll; counted once committed.
                await asyncio.get_running_loop().run_in_executor(sink.pool, _commit_all,
                                                                 sink, results)
                for r in results:
                    sink.count(r)
            s.finished += len(results)
            s.active, s.lag_ms, s.cpu_s = reply["active"], reply["lag_ms"], reply["cpu_s"]
            s.started = reply.get("started", s.started)
            if reply.get("lag"):
                s.lag = reply["lag"]
            if reply["done"]:
                s.interrupted = bool(reply["interrupted"])
                s.error = reply["error"]
                s.status = "failed" if s.error else "done"
                if s.error:
                    _say(out, f"worker {s.worker} ({s.info.get('host')}) failed: {s.error}; "
                              f"{s.assigned - s.finished} of its calls not finished")
        lags = [s.lag_ms for s in states if s.status == "running"]
        if progress.lag is not None:
            progress.lag.current_ms = max(lags, default=0.0)


def _commit_all(sink: StoreSink, results: list[CallRecord]) -> None:
    for r in results:
        sink.commit(r)


async def _drain(s: _WorkerState, with_lag: bool, timeout_s: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        reply: dict[str, Any] = await s.handle.drain.remote(with_lag)
    return reply


def _missed(ray: Any, s: _WorkerState, exc: BaseException, out: Any) -> None:
    """Account a failed poll; declare the worker lost when it is dead or long unreachable."""
    dead = isinstance(exc, ray.exceptions.RayActorError) and not isinstance(
        exc, getattr(ray.exceptions, "ActorUnavailableError", ()))
    now = time.monotonic()
    if s.unreachable_since is None:
        s.unreachable_since = now
    if not dead and now - s.unreachable_since < UNREACHABLE_S:
        return
    s.status = "died"
    s.in_flight_at_loss = s.active
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    s.error = f"{type(exc).__name__}: {first}"[:300]
    _say(out, f"worker {s.worker} ({s.info.get('host')}, pid {s.info.get('pid')}) lost: "
              f"{s.active} calls in flight, {s.assigned - s.finished} of its {s.assigned} calls "
              f"not recorded ({s.finished} finished calls kept); finish the run with --resume")


def _say(out: Any, line: str) -> None:
    log.warning("%s", line)
    if out is not None:
        print(f"callsim: {line}", file=out, flush=True)
