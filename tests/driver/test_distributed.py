"""Runs on several Ray workers read like runs on one: same calls, same schedule, same store;
a lost worker keeps its finished calls and ``--resume`` finishes the run."""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.agent.process import agent_process
from simulator.driver.arrivals import ArrivalSpec, split_schedule
from simulator.driver.distributed import (
    actor_name,
    run_distributed,
    shard_config,
    shard_indices,
    split_evenly,
)
from simulator.driver.runner import RunConfig, plan, run_load
from simulator.errors import InputError
from simulator.personas import generate_calls, load_packs
from simulator.storage.store import RunStore
from tests.conftest import TIME_FACTOR

ray: Any
try:
    import ray
except ImportError:  # pragma: no cover - depends on the optional extra
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed: pip install "
                               "'callsim[ray]' to run the distributed tests")

SEED = 21


def _config(url: str, **kw: Any) -> RunConfig:
    return RunConfig(target=url, arrival=ArrivalSpec(kind="poisson", rate=100.0), seed=SEED,
                     honour_pauses=False, pacing="none", **kw)


def _rows(run_dir: Path) -> dict[int, tuple[str, float | None, float, float]]:
    con = sqlite3.connect(run_dir / "store.sqlite")
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT idx, script_id, scheduled_s, started_s, finished_s FROM calls")}
    except sqlite3.OperationalError:  # the store is being created
        return {}
    finally:
        con.close()


def _meta(run_dir: Path) -> dict[str, Any]:
    store = RunStore(run_dir)
    try:
        return store.meta()
    finally:
        store.close()


# ----------------------------------------------------------------------------- pure part
def test_shards_deal_calls_like_split_schedule() -> None:
    offsets, _, _ = plan([], RunConfig(target="x", arrival=ArrivalSpec(kind="poisson", rate=5.0),
                                       count=23, seed=3))
    assert offsets is not None
    shards = shard_indices(list(range(23)), 3)
    for k, part in enumerate(split_schedule(offsets, 3)):
        assert list(offsets[shards[k]]) == list(part)
    assert sorted(i for s in shards for i in s) == list(range(23))


def test_closed_loop_concurrency_is_split_across_workers() -> None:
    cfg = RunConfig(target="x", arrival=ArrivalSpec(kind="closed", concurrency=10),
                    max_active=5)
    parts = [shard_config(cfg, k, 3) for k in range(3)]
    assert [p.arrival.concurrency for p in parts] == split_evenly(10, 3) == [4, 3, 3]
    assert sum(p.max_active or 0 for p in parts) == 5
    with pytest.raises(InputError, match="cannot be split over 4 workers"):
        shard_config(RunConfig(target="x", arrival=ArrivalSpec(kind="closed", concurrency=3)),
                     0, 4)


def test_without_ray_several_workers_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *a: Any, **kw: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError) as exc:
        asyncio.run(run_distributed([], {}, RunConfig(target="http://127.0.0.1:9/v1"),
                                    tmp_path / "run", workers=2))
    msg = str(exc.value)
    assert "\n" not in msg and "pip install 'callsim[ray]'" in msg
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    assert ray is not None
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def agent_url() -> Iterator[str]:
    with agent_process() as url:
        yield url


@needs_ray
@pytest.mark.timing
def test_two_workers_replay_the_single_process_run(
    ray_local: None, agent_url: str, tmp_path: Path
) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", 400, SEED)
    cfg = _config(agent_url)
    one = asyncio.run(run_load(calls, packs, cfg, tmp_path / "one"))
    two = asyncio.run(run_distributed(calls, packs, cfg, tmp_path / "two", workers=2))
    assert one["status"] == two["status"] == "complete"
    a, b = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert sorted(b) == list(range(400))
    # Same calls, same scripts, same schedule: the union of the shards is the run.
    assert {i: r[0] for i, r in b.items()} == {i: r[0] for i, r in a.items()}
    offsets, _, _ = plan(calls, cfg)
    assert offsets is not None
    assert [b[i][1] for i in range(400)] == [a[i][1] for i in range(400)] == list(offsets)
    # Both workers started their calls on the shared clock: none before its slot, and not
    # systematically late (a wrong clock conversion would shift every start by seconds).
    late = [b[i][2] - (b[i][1] or 0.0) for i in range(400)]
    assert min(late) > -0.002
    assert statistics.median(late) < 0.5 * TIME_FACTOR
    assert [w["finished"] for w in two["workers"]] == [200, 200]
    # Read and reported like a one-process run: same summary fields, same stored config.
    assert set(one) <= set(two) and set(one["gate"]) == set(two["gate"])
    assert _meta(tmp_path / "two")["config"] == _meta(tmp_path / "one")["config"]
    assert two["loop_lag"]["p99_ms"] is not None  # merged from both workers


@needs_ray
def test_killed_worker_keeps_its_finished_calls_and_resume_completes(
    ray_local: None, agent_url: str, tmp_path: Path
) -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", 200, SEED)
    cfg = _config(agent_url)
    run_dir = tmp_path / "run"
    seen: dict[int, tuple[str, float | None, float, float]] = {}

    async def kill_worker_one() -> None:
        while True:
            await asyncio.sleep(0.05)
            rows = _rows(run_dir)
            if sum(1 for i in rows if i % 2 == 1) >= 20:
                break
        ray.kill(ray.get_actor(actor_name(run_dir, 1)))
        await asyncio.sleep(0.3)
        seen.update(_rows(run_dir))

    async def both() -> dict[str, Any]:
        killer = asyncio.create_task(kill_worker_one())
        summary = await run_distributed(calls, packs, cfg, run_dir, workers=2)
        await killer
        return summary

    first = asyncio.run(both())
    assert first["status"] == "partial"
    lost = [w for w in first["workers"] if w["status"] == "died"]
    assert [w["worker"] for w in lost] == [1]
    assert lost[0]["finished"] >= 20 and lost[0]["in_flight_at_loss"] is not None
    kept = _rows(run_dir)
    assert sum(1 for i in kept if i % 2 == 0) == 100  # worker 0 finished its shard
    assert first["calls"]["completed"] == len(kept) < 200
    assert all(seen[i] == kept[i] for i in seen if i % 2 == 1)

    again = asyncio.run(run_distributed(calls, packs, cfg, run_dir, workers=2, resume=True))
    assert again["status"] == "complete"
    after = _rows(run_dir)
    assert sorted(after) == list(range(200))
    # Calls recorded before the loss are kept as they were, not run again.
    assert all(after[i] == kept[i] for i in kept)


@needs_ray
def test_a_closed_loop_cut_by_duration_on_two_workers_is_a_complete_run(
    ray_local: None, agent_url: str, tmp_path: Path
) -> None:
    # As in one process: the run is the calls its workers started before --duration ended,
    # not "stopped" against every planned script.
    packs = load_packs()
    calls = generate_calls(packs, "all", 2000, SEED)
    cfg = RunConfig(target=agent_url, arrival=ArrivalSpec(kind="closed", concurrency=8),
                    seed=SEED, honour_pauses=False, pacing="none", duration_s=2.0)
    s = asyncio.run(run_distributed(calls, packs, cfg, tmp_path / "two", workers=2))
    assert s["status"] == "complete"
    assert 0 < s["calls"]["completed"] == s["calls"]["total"] < 2000
    assert s["calls"]["failed"] == 0
    assert len(_rows(tmp_path / "two")) == s["calls"]["total"]


@needs_ray
@pytest.mark.timing
def test_a_voice_agents_tools_reach_the_worker_holding_the_call(tmp_path: Path) -> None:
    # The agent has one tool URL (--tools-port). Each worker serves its own calls' relay on a
    # port of its own, and the run's relay on --tools-port passes each request on to the
    # worker holding the call: every call's tools are seen and graded, on either worker.
    import json
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        relay = int(sock.getsockname()[1])
    with agent_process("--ttft-ms", "100", "--vad-silence-ms", "300", "--stt", "none",
                       "--tools-url", f"http://127.0.0.1:{relay}") as url:
        base = url.removeprefix("http://").removesuffix("/v1")
        p = subprocess.run(
            [sys.executable, "-m", "simulator", "run", "--target", f"ws://{base}/twilio",
             "--transport", "twilio", "--text-hints", "--caller-audio", "tones",
             "--listener", "off", "--tools-port", str(relay), "--workers", "2",
             "--count", "6", "--concurrency", "4", "--seed", "2", "--no-pauses",
             "--runs-dir", str(tmp_path), "--json"],
            capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)
    assert s["status"] == "complete" and s["calls"]["ok"] == 6, s["errors"]
    assert [w["status"] for w in s["workers"]] == ["done", "done"]
    assert [w["finished"] for w in s["workers"]] == [3, 3]
    assert not s["tools_not_observed"]
    assert s["gate"]["tool_arg_accuracy"] >= 0.95
    # Told once where the agent's tools go: the run's own address, not a worker's.
    assert p.stderr.count("tool relay for the agent at") == 1
    assert f"127.0.0.1:{relay}" in p.stderr
