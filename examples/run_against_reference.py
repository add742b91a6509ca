"""Replay generated calls against the reference agent through the library API (no CLI).

    python examples/run_against_reference.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from simulator.agent.process import agent_process
from simulator.driver.arrivals import ArrivalSpec
from simulator.driver.runner import RunConfig, run_load
from simulator.personas import generate_calls, load_packs


def main() -> None:
    packs = load_packs()
    calls = generate_calls(packs, "all", count=100, seed=7)
    with agent_process("--ttft-ms", "120") as url, tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(target=url, arrival=ArrivalSpec(kind="closed", concurrency=25), seed=7)
        summary = asyncio.run(run_load(calls, packs, config, Path(tmp) / "run"))
    for name, value in summary["gate"].items():
        print(f"{name:24s} {value}")


if __name__ == "__main__":
    main()
