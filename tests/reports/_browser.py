"""Drive Debian's headless Chromium over the DevTools protocol (aiohttp websocket).

``Page`` loads a URL, collects console errors, uncaught exceptions and log errors, and
evaluates JavaScript in the page. Chromium is started by the fixture and stopped by its
own process handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1"]


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.loaded = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                               "assert"):
                self.errors.append("console: " + json.dumps(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                self.errors.append("exception: " + json.dumps(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                self.errors.append("log: " + params["entry"].get("text", ""))
            elif method == "Page.javascriptDialogOpening":
                self.dialogs.append(params.get("message", ""))
                await self.send("Page.handleJavaScriptDialog", accept=False, wait=False)
            elif method == "Page.loadEventFired":
                self.loaded.set()

    async def send(self, method: str, wait: bool = True, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
        if not wait:
            return {}
        res = await asyncio.wait_for(fut, 30)
        if "error" in res:
            raise RuntimeError(f"{method}: {res['error']}")
        return res.get("result", {})

    async def goto(self, url: str) -> None:
        self.loaded.clear()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self.loaded.wait(), 30)

    async def eval(self, expr: str) -> Any:
        res = await self.send("Runtime.evaluate", expression=expr, returnByValue=True,
                              awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expr[:60]}: {res['exceptionDetails']}")
        return res["result"].get("value")


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    """A fresh headless Chromium with one page, DevTools domains enabled."""
    # Chromium's helper processes may still write to the profile for a moment after the main
    # process exits: the whole process group is killed, and cleanup tolerates stragglers.
    with tempfile.TemporaryDirectory(prefix="callsim-chromium-",
                                     ignore_cleanup_errors=True) as profile:
        proc = await asyncio.create_subprocess_exec(
            str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            for _ in range(300):
                if port_file.exists() and port_file.read_text().strip():
                    break
                if proc.returncode is not None:
                    raise RuntimeError(f"chromium exited with {proc.returncode}")
                await asyncio.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json()
                page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                async with http.ws_connect(page_ws, max_msg_size=0) as ws:
                    page = Page(ws)
                    for domain in ("Runtime", "Log", "Page"):
                        await page.send(f"{domain}.enable")
                    try:
                        yield page
                    finally:
                        page.reader.cancel()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
