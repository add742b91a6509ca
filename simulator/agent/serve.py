"""Run the reference agent: its text endpoint and its voice endpoints on one port."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from aiohttp import web

from simulator.agent.policy import AgentConfig
from simulator.agent.server import create_agent_app
from simulator.agent.voice import VoiceAgentConfig, create_voice_routes
from simulator.personas import Pack


async def serve_agent(cfg: AgentConfig, voice: VoiceAgentConfig, host: str, port: int,
                      packs: dict[str, Pack]) -> None:
    """Serve the text and voice endpoints on ``host:port`` (0: any free port) until SIGINT /
    SIGTERM; the first line on stdout names the bound address."""
    app = create_agent_app(cfg, packs)
    create_voice_routes(app, voice, packs)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
    print(f"reference agent listening on http://{shown}:{bound[1]}/v1 "
          f"(voice: ws://{shown}:{bound[1]}/twilio, ws://{shown}:{bound[1]}/v1/realtime)",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
