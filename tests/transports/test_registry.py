"""Transports are found by name in one registry: the ones callsim ships, and one from a
separate package registered through the ``callsim.transports`` entry point."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from simulator.agent.process import agent_process
from simulator.errors import InputError
from simulator.transports.registry import ENTRY_POINT_GROUP, transport_names, transport_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_transport"
CALLSIM = [sys.executable, "-m", "simulator"]
BUILT_IN = {"openai-chat": ("text", False), "openai-realtime": ("audio", False),
            "twilio": ("audio", True), "sip": ("audio", True)}


def test_built_in_transports_declare_what_they_carry() -> None:
    for name, (carries, relay) in BUILT_IN.items():
        spec = transport_spec(name)
        assert (spec.carries, spec.tool_relay) == (carries, relay), name
    assert set(BUILT_IN) <= set(transport_names())


def test_unknown_transport_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(InputError) as exc:
        transport_spec("carrier-pigeon")
    msg = str(exc.value)
    assert "carrier-pigeon" in msg and "openai-chat" in msg and "twilio" in msg
    assert "\n" not in msg


def test_a_text_run_imports_only_its_own_transport(tmp_path: Path) -> None:
    """``callsim run`` over openai-chat loads neither audio transport nor the audio stack
    (scipy.signal and scipy.stats cost a text run seconds of CPU at start-up)."""
    listing = tmp_path / "modules.txt"
    # The command as users run it, writing the modules it imported when it exits.
    code = ("import atexit, runpy, sys; "
            f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules))); "
            "sys.argv[0] = 'callsim'; runpy.run_module('simulator', run_name='__main__')")
    with agent_process() as url:
        p = subprocess.run([sys.executable, "-c", code, "run", "--target", url, "--count", "2",
                            "--concurrency", "2", "--pacing", "none",
                            "--runs-dir", str(tmp_path / "runs"), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout)["calls"]["completed"] == 2
    imported = set(listing.read_text().split())
    assert "simulator.transports.openai_chat" in imported
    heavy = {m for m in imported if m.startswith((
        "simulator.transports.realtime", "simulator.transports.twilio", "simulator.audio",
        "simulator.transports.sip",
        "scipy.signal", "scipy.stats"))}
    assert not heavy, sorted(heavy)


def _install_example(site: Path) -> None:
    """What ``pip install`` leaves behind, without a network: the package and a dist-info
    carrying the entry points declared in the example's pyproject.toml."""
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copytree(EXAMPLE / "src" / "callsim_json_webhook", site / "callsim_json_webhook")
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    eps = meta["entry-points"][ENTRY_POINT_GROUP]
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))


def test_a_transport_from_another_package_runs_end_to_end(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install_example(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    args = ["run", "--transport", "json-webhook", "--count", "8", "--concurrency", "4",
            "--seed", "3", "--no-pauses", "--pacing", "none", "--runs-dir", str(tmp_path / "runs"),
            "--json"]
    with agent_process() as url:
        done = subprocess.run([*CALLSIM, *args, "--target", url], env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        # Without the package on the path the name is unknown: bad input, exit 2.
        missing = subprocess.run([*CALLSIM, *args, "--target", url], capture_output=True,
                                 text=True, timeout=120, cwd=tmp_path,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert summary["calls"]["completed"] == 8 and summary["calls"]["failed"] == 0
    assert summary["gate"]["tool_arg_accuracy"] >= 0.9
    assert summary["ttft_ms"]["p50"] > 0
    assert not (ROOT / "simulator" / "callsim_json_webhook").exists()
    assert missing.returncode == 2
    assert "unknown transport 'json-webhook'" in missing.stderr


def _strings_outside_help(path: Path) -> set[str]:
    """Every string literal of a module except docstrings and ``help=`` texts."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "help":
            skip.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip}


@pytest.mark.parametrize("module", ["simulator/cli.py",
                                    *sorted(str(p.relative_to(ROOT)) for p in
                                            (ROOT / "simulator" / "driver").glob("*.py"))])
def test_driver_and_cli_name_no_transport(module: str) -> None:
    names = [*BUILT_IN, "http"]
    found = {(n, s) for s in _strings_outside_help(ROOT / module) for n in names
             if n in s.lower().replace("http://", "").replace("https://", "")}
    assert not found, found
