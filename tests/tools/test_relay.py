"""The tool relay as a bot elsewhere reaches it: the address it binds, its bearer token."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from simulator.tools.backend import CALL_ID_HEADER
from simulator.tools.relay import start_tool_relay


async def _echo(name: str, parsed: dict[str, Any] | None, raw: str, k: int
                ) -> tuple[str, dict[str, Any] | None]:
    return json.dumps({"tool": name, "args": parsed, "k": k}), None


async def _post(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(
            f"{url}/tools/find_patient", data=json.dumps({"phone": "555"}),
            headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("token", [None, "s3cret"], ids=["open", "token"])
async def test_relay_routes_a_call_with_the_right_credentials(token: str | None) -> None:
    running = await start_tool_relay(0, "127.0.0.1", token)
    try:
        log = running.relay.register("c1", _echo)
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        status, body = await _post(running.url, {CALL_ID_HEADER: "c1", **auth})
        assert status == 200 and body == {"tool": "find_patient", "args": {"phone": "555"},
                                          "k": 0}
        assert [e["name"] for e in log] == ["find_patient"]
        assert running.relay.requests == 1
    finally:
        await running.close()


@pytest.mark.parametrize("sent", [None, "Bearer wrong", "s3cret", "Basic s3cret"],
                         ids=["missing", "wrong", "no-scheme", "other-scheme"])
async def test_relay_with_a_token_refuses_requests_without_it(sent: str | None) -> None:
    running = await start_tool_relay(0, token="s3cret")
    try:
        log = running.relay.register("c1", _echo)
        headers = {CALL_ID_HEADER: "c1", **({"Authorization": sent} if sent else {})}
        status, body = await _post(running.url, headers)
        assert status == 401 and body["error"] == "unauthorized"
        assert log == [] and running.relay.requests == 0  # nothing reached the call
    finally:
        await running.close()


async def test_relay_binds_the_address_it_is_given() -> None:
    # Every interface: a bot in a container reaches it through the host's address; here
    # the loopback address stands in for it. The URL names the bound address.
    running = await start_tool_relay(0, "0.0.0.0")
    try:
        assert running.url.startswith("http://0.0.0.0:")
        port = running.url.rsplit(":", 1)[1]
        running.relay.register("c1", _echo)
        status, _ = await _post(f"http://127.0.0.1:{port}", {CALL_ID_HEADER: "c1"})
        assert status == 200
    finally:
        await running.close()


def test_run_refuses_a_token_variable_that_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from simulator.cli import main

    monkeypatch.delenv("CALLSIM_TEST_NO_TOKEN", raising=False)
    got = CliRunner().invoke(main, ["run", "--transport", "twilio", "--target",
                                    "ws://127.0.0.1:9/ws", "--count", "1",
                                    "--tools-token-env", "CALLSIM_TEST_NO_TOKEN"])
    assert got.exit_code == 2
    assert "--tools-token-env: environment variable CALLSIM_TEST_NO_TOKEN is not set" in (
        got.output)
