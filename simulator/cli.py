"""The ``callsim`` command: a thin click layer over the library.

Exit codes: 0 ok, 1 the check failed (gate), 2 bad input or usage. A user error is one
line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from simulator import __version__
from simulator.agent.process import agent_process, running_agent
from simulator.errors import CallsimError, InputError
from simulator.transports.registry import DEFAULT_TRANSPORT

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(fn: F) -> F:
    """Turn a CallsimError into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CallsimError as exc:
            click.echo(f"callsim: error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="callsim")
def main() -> None:
    """callsim: synthetic call traffic for AI voice agents.

    Generate callers, degrade them, replay them concurrently against an agent endpoint,
    and turn the results into the four eval-gate numbers.
    """


# ----------------------------------------------------------------------------- generate
@main.command()
@click.option("--pack", default="all", show_default=True,
              help="Persona pack (vertical) name, or 'all' to mix them.")
@click.option("--count", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--personas", "personas_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Extra directory of persona pack YAML files.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output JSONL file of call scripts.")
@_user_errors
def generate(pack: str, count: int, seed: int, personas_dir: Path | None, output: Path) -> None:
    """Write COUNT seeded call scripts (same seed, same bytes)."""
    from simulator.callscript import write_calls
    from simulator.personas import generate_calls, load_packs

    packs = load_packs(personas_dir)
    calls = generate_calls(packs, pack, count, seed)
    n = write_calls(calls, output)
    click.echo(f"wrote {n} call scripts to {output}", err=True)


# ----------------------------------------------------------------------------- run
def _load_inputs(calls_file: Path | None, pack: str, count: int, seed: int,
                 personas_dir: Path | None) -> tuple[list[Any], dict[str, Any]]:
    from simulator.callscript import load_calls
    from simulator.personas import generate_calls, load_packs

    packs = load_packs(personas_dir)
    if calls_file is not None:
        calls = load_calls(calls_file)
        unknown = sorted({c.pack for c in calls} - set(packs))
        if unknown:
            from simulator.errors import CallFileError

            raise CallFileError(f"{calls_file}: field 'pack': unknown pack {unknown[0]!r} "
                                f"(known: {', '.join(sorted(packs))})")
    else:
        calls = generate_calls(packs, pack, count, seed)
    return calls, packs


def _degrade(calls: list[Any], profile: str, seed: int, profiles_dir: Path | None) -> list[Any]:
    """Apply noise profile ``profile`` ('none': replay the scripts exactly as written)."""
    if profile == "none":
        return calls
    already = next((c for c in calls if c.degradation is not None), None)
    if already is not None:
        raise InputError(f"--profile {profile}: call {already.call_id} is already degraded "
                         f"(profile {already.degradation.profile}); use --profile none")
    from simulator.degradation import degrade_calls, get_profile

    prof = get_profile(profile, profiles_dir)
    return list(degrade_calls(calls, prof, seed))


@main.command()
@click.option("--target", help="Agent base URL, e.g. http://127.0.0.1:8000/v1 (required "
                               "unless every --arm names its URL).")
@click.option("--arm", "arms", multiple=True, metavar="NAME=URL[,model=M]",
              help="An arm of an interleaved A/B run (give two or more): every script is "
                   "replayed once per arm, in a seeded order, within one arrival schedule; "
                   "--count is per arm. 'NAME=model=M' uses --target. Judge with "
                   "`callsim gate RUN` (see docs/gate.md).")
@click.option("--transport", default=DEFAULT_TRANSPORT, show_default=True,
              help="How to reach the agent: openai-chat, openai-realtime, twilio, sip, webrtc, "
                   "or a transport an installed package registers (docs/transports.md).")
@click.option("--model", default="callsim-reference", show_default=True)
@click.option("--api-key-env", help="Name of the environment variable holding the API key.")
@click.option("--calls", "calls_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Call scripts (JSONL) to replay; default: generate --count from --pack.")
@click.option("--pack", default="all", show_default=True)
@click.option("--personas", "personas_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--profile", default="none", show_default=True,
              help="Noise profile to apply on the fly ('none': scripts as written; see "
                   "`callsim profiles`).")
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(min=1), help="Calls to make (default: all scripts).")
@click.option("--duration", help="Stop starting calls after this long (e.g. 10m).")
@click.option("--warmup", default="0", show_default=True,
              help="Calls starting in this first stretch are excluded from metrics.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Closed loop: calls in flight.")
@click.option("--rate", help="Open loop: arrival rate, e.g. 20/s, 300/m.")
@click.option("--arrival", help="poisson | gamma | constant | stages | trace | closed")
@click.option("--burstiness", type=float, help="gamma: coefficient of variation (1 = Poisson).")
@click.option("--stages", help='Ramps, e.g. "1m:5/s,5m:20/s,1m:0/s".')
@click.option("--trace", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of call start offsets in seconds.")
@click.option("--max-starts", type=float, help="Cap on call starts per second.")
@click.option("--max-rps", type=float, help="Cap on requests per second to the target.")
@click.option("--text-hints", is_flag=True,
              help="Audio transports: also send the caller's words (reference agent only).")
@click.option("--tools-port", default=0, show_default=True, type=int,
              help="Transports whose agent calls tools over HTTP: port of the tool relay "
                   "(0: any free port).")
@click.option("--tools-host", default="127.0.0.1", show_default=True,
              help="Address the tool relay binds: 0.0.0.0 (or a host address) for a bot in "
                   "another container or on another host (docs/real-agents.md).")
@click.option("--tools-token-env", metavar="VAR",
              help="Environment variable holding a token the tool relay requires as "
                   "'Authorization: Bearer TOKEN' (the token is never stored).")
@click.option("--caller-audio", type=click.Choice(["tts", "tones"]),
              help="Audio transports: the caller's voice. 'tts': each turn spoken by "
                   "pyttsx3/espeak-ng in the persona's voice through the --profile's audio "
                   "line (rendered before the run starts; cached in $CALLSIM_TTS_CACHE); "
                   "'tones': synthetic voiced tones (pure timing/load work). Default: tts "
                   "when the TTS works here, else tones with a notice.")
@click.option("--caller-voice", type=click.Choice(["piper", "espeak"]),
              help="--caller-audio tts: the voices. 'piper': natural speech (Piper's "
                   "bundled voice, a rate and pitch per persona), which an agent's "
                   "recogniser hears like a recording; 'espeak': espeak-ng formant voices. "
                   "Default: piper when installed (callsim[asr]), else espeak.")
@click.option("--listener", "listener", default="auto", show_default=True,
              type=click.Choice(["auto", "pocketsphinx", "moonshine", "off"]),
              help="Audio transports: how the caller hears agent turns whose words the protocol "
                   "does not carry (Twilio): 'pocketsphinx' recognises each turn offline "
                   "(extra 'asr'; docs/listener.md); 'moonshine' with Moonshine base (far "
                   "fewer errors, about six times the CPU: for real agents at low "
                   "concurrency); 'off': the caller answers blind. 'auto': pocketsphinx when "
                   "installed.")
@click.option("--listener-workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Audio transports: listener recogniser processes.")
@click.option("--greeting-wait", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="Audio transports: seconds to wait for the agent to start greeting before "
                   "the caller speaks (0: speak at once).")
@click.option("--greeting-max", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="Audio transports: the longest greeting the caller lets finish (seconds).")
@click.option("--agent-silence", default=0.7, show_default=True,
              type=click.FloatRange(min=0.02),
              help="Audio transports: agent silence (after its audio played out) that ends "
                   "its turn, in seconds.")
@click.option("--reprompt-after", default=8.0, show_default=True,
              type=click.FloatRange(min=0.1),
              help="Audio transports: seconds of agent silence after the caller's turn before "
                   "the caller says 'Hello? Are you still there?'.")
@click.option("--reprompts", default=1, show_default=True, type=click.IntRange(min=0),
              help="Audio transports: re-prompts before the caller gives up (the call then "
                   "fails as agent_silent).")
@click.option("--caller", "caller_kind", default="rules", show_default=True,
              type=click.Choice(["rules", "llm"]),
              help="Who plays the caller: the rule-based caller following the script, or a "
                   "model at --caller-endpoint playing the script's persona.")
@click.option("--caller-endpoint", help="--caller llm: OpenAI-compatible base URL (…/v1).")
@click.option("--caller-model", help="--caller llm: the model that plays the caller.")
@click.option("--caller-api-key-env", help="--caller llm: environment variable with its key.")
@click.option("--caller-price-in", default=0.0, show_default=True, type=float,
              help="--caller llm: USD per 1M input tokens (for the caller's own cost).")
@click.option("--caller-price-out", default=0.0, show_default=True, type=float,
              help="--caller llm: USD per 1M output tokens.")
@click.option("--max-active", type=click.IntRange(min=1),
              help="Open loop: cap on calls in flight (late starts show as dispatch delay).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--resume", "resume_run", help="Finish the calls a stored run had not completed.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Shard workers (Ray actors) on this machine; more than 1 needs callsim[ray].")
@click.option("--ray-address", help="Run the workers on this Ray cluster (e.g. 'auto').")
@click.option("--agent-profile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Agent profile YAML (price table).")
@click.option("--rubric", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Record this rubric's sha256 with the run (for the gate), and say before "
                   "the run starts whether it plans the calls the rubric needs.")
@click.option("--no-pauses", is_flag=True, help="Ignore scripted hesitations and silences.")
@click.option("--pacing", type=click.Choice(["speech", "none"]), default="speech",
              show_default=True,
              help="Text transports: 'speech' sends each caller turn once the persona has "
                   "said it (its words at its speaking rate, plus its pauses), timed from "
                   "there as ASR would deliver it; 'none' sends turns back to back (stress).")
@click.option("--grading", type=click.Choice(["auto", "loop", "process"]), default="auto",
              show_default=True,
              help="Where finished calls are graded: 'process' in a grading process at the "
                   "lowest CPU priority, so grading never delays the loop that paces calls "
                   "and stamps bytes; 'loop' on that loop; 'auto' a process from 50 calls in "
                   "flight. The grades are the same.")
@click.option("--lookup-match", type=click.Choice(["auto", "exact", "sounds-like"]),
              default="auto", show_default=True,
              help="How the tool backend's lookups compare an agent's arguments with the "
                   "records: 'exact' (normalised), or 'sounds-like': a name or street spelt "
                   "otherwise but sounding the same ('Kahn' for 'Khan') still finds the "
                   "record; the argument is graded as written either way. 'auto': sounds-like "
                   "on audio transports (a caller's spelling does not travel by voice), exact "
                   "on text.")
@click.option("--connect-timeout", default=5.0, show_default=True, type=float)
@click.option("--first-byte-timeout", default=30.0, show_default=True, type=float)
@click.option("--stall-timeout", default=10.0, show_default=True, type=float)
@click.option("--call-timeout", default=600.0, show_default=True, type=float)
@click.option("--tool-timeout", default=10.0, show_default=True, type=float)
@click.option("--max-reply-mb", default=8.0, show_default=True, type=float,
              help="A reply larger than this ends the call as 'oversized'.")
@click.option("--label", help="What this run is, in a few words (e.g. 'gpt-4o, prompt v2'); "
                             "`callsim runs`, compare and reports name the run by it.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_user_errors
def run(**kw: Any) -> None:
    """Replay calls against an agent endpoint and print the four gate numbers."""
    summary = run_from_options(**kw)
    _print_summary(summary, kw["as_json"])
    if summary.get("status") != "complete":
        c = summary["calls"]
        click.echo(f"run {summary['run_id']} stopped with {c['completed']} of {c['total']} calls "
                   f"recorded; finish it with: callsim run --target {summary.get('target')} "
                   f"--resume {summary.get('run_dir')}", err=True)
        sys.exit(130)  # interrupted (Ctrl-C / SIGTERM): not a complete run


def run_from_options(**kw: Any) -> dict[str, Any]:
    from simulator.agent_profile import load_agent_profile
    from simulator.callscript import load_calls
    from simulator.driver.arrivals import parse_duration, spec_from_options
    from simulator.driver.distributed import run_distributed
    from simulator.driver.runner import RunConfig
    from simulator.personas import load_packs
    from simulator.storage.store import RunStore, new_run_id, resolve_run
    from simulator.transports.base import Deadlines
    from simulator.transports.registry import api_key_from_env

    api_key = api_key_from_env(kw.get("api_key_env"))
    if kw.get("resume_run"):
        run_dir = resolve_run(kw["resume_run"], kw["runs_dir"])
        store = RunStore(run_dir)
        meta = store.meta()
        store.close()
        cfg = _config_from_meta(meta["config"])
        calls = load_calls(run_dir / "calls.jsonl")
        packs = load_packs(kw.get("personas_dir"))
        workers = kw.get("workers") or int(meta.get("workers") or 1)
        return _run_async(run_distributed(
            calls, packs, cfg, run_dir, workers=workers, ray_address=kw.get("ray_address"),
            api_key=api_key, resume=True, agent=load_agent_profile(kw.get("agent_profile")),
            progress_out=sys.stderr))
    spec = spec_from_options(arrival=kw.get("arrival"), rate=kw.get("rate"),
                             burstiness=kw.get("burstiness"), stages=kw.get("stages"),
                             trace=kw.get("trace"),
                             concurrency=kw.get("concurrency") or (
                                 None if (kw.get("rate") or kw.get("stages") or kw.get("trace"))
                                 else 10))
    calls, packs = _load_inputs(kw.get("calls_file"), kw["pack"], kw.get("count") or 100,
                                kw["seed"], kw.get("personas_dir"))
    calls = _degrade(calls, kw["profile"], kw["seed"], kw.get("profiles_dir"))
    profile_name = kw["profile"]
    if profile_name == "none" and calls and calls[0].degradation is not None:
        profile_name = calls[0].degradation.profile  # a degraded fixture file
    caller_audio, audio_params = _caller_audio(kw.get("caller_audio"), kw["transport"],
                                               profile_name, kw.get("profiles_dir"))
    caller_voice = "espeak"
    if caller_audio == "tts":
        from simulator.audio.caller_audio import resolve_caller_voice

        caller_voice, voice_notice = resolve_caller_voice(kw.get("caller_voice"))
        if voice_notice:
            click.echo(f"callsim: note: {voice_notice}", err=True)
    arms = _arms(kw)
    target = kw.get("target") or arms[0].target
    rubric = rubric_sha = None
    if kw.get("rubric"):
        from simulator.gate.rubric import load_rubric

        rubric, rubric_sha = load_rubric(kw["rubric"])
    caller = kw.get("caller_kind") or "rules"
    if caller == "llm":
        from simulator.errors import InputError

        if not kw.get("caller_endpoint") or not kw.get("caller_model"):
            raise InputError("--caller llm: needs --caller-endpoint URL and --caller-model M")
        if kw.get("caller_api_key_env") and not os.environ.get(kw["caller_api_key_env"]):
            raise InputError(f"--caller-api-key-env: environment variable "
                             f"{kw['caller_api_key_env']} is not set")
    cfg = RunConfig(
        caller=caller, caller_endpoint=kw.get("caller_endpoint"),
        caller_model=kw.get("caller_model"), caller_api_key_env=kw.get("caller_api_key_env"),
        caller_price_in_per_m=kw.get("caller_price_in") or 0.0,
        caller_price_out_per_m=kw.get("caller_price_out") or 0.0,
        target=target, transport=kw["transport"], model=kw["model"], arms=arms,
        api_key_env=kw.get("api_key_env"), arrival=spec,
        count=kw.get("count"),
        duration_s=parse_duration(kw["duration"]) if kw.get("duration") else None,
        warmup_s=parse_duration(kw.get("warmup") or "0"), seed=kw["seed"],
        profile=profile_name, max_starts_per_s=kw.get("max_starts"),
        max_requests_per_s=kw.get("max_rps"), max_active=kw.get("max_active"),
        text_hints=bool(kw.get("text_hints")), tools_port=kw.get("tools_port") or 0,
        tools_host=kw.get("tools_host") or "127.0.0.1", tools_token_env=_token_env(kw),
        caller_audio=caller_audio, caller_voice=caller_voice, audio_params=audio_params,
        deadlines=Deadlines(connect_s=kw["connect_timeout"], first_byte_s=kw["first_byte_timeout"],
                            stall_s=kw["stall_timeout"], call_s=kw["call_timeout"],
                            tool_s=kw["tool_timeout"],
                            max_reply_bytes=int(kw.get("max_reply_mb", 8.0) * 1024 * 1024)),
        honour_pauses=not kw.get("no_pauses"), pacing=kw.get("pacing") or "speech",
        rubric_sha256=rubric_sha, label=_label(kw.get("label")),
        listener=kw.get("listener") or "auto", listener_workers=kw.get("listener_workers") or 1,
        turn_taking=_turn_taking(kw), grading=kw.get("grading") or "auto",
        lookup_match=kw.get("lookup_match") or "auto",
    )
    run_dir = Path(kw["runs_dir"]) / new_run_id()
    where = (f"arms {', '.join(f'{a.name}={a.target} ({a.model})' for a in arms)} interleaved"
             if arms else f"target {target}")
    click.echo(f"run {run_dir.name}: {len(calls)} call scripts, {spec.describe()}, "
               f"profile {profile_name}, {where}", err=True)
    if rubric is not None:
        from simulator.driver.runner import plan
        from simulator.gate.plan import calls_notice

        offsets, total, n_warm = plan(calls, cfg)
        click.echo(calls_notice(rubric, calls, cfg, total, n_warm,
                                open_ended=offsets is None and cfg.duration_s is not None),
                   err=True)
    return _run_async(run_distributed(
        calls, packs, cfg, run_dir, workers=kw.get("workers") or 1,
        ray_address=kw.get("ray_address"), api_key=api_key,
        agent=load_agent_profile(kw.get("agent_profile")), progress_out=sys.stderr))


def _token_env(kw: dict[str, Any]) -> str | None:
    """``--tools-token-env``: the variable's name, checked to be set and non-empty."""
    name = kw.get("tools_token_env")
    if name and not os.environ.get(name):
        raise InputError(f"--tools-token-env: environment variable {name} is not set")
    return name or None


def _arms(kw: dict[str, Any]) -> tuple[Any, ...]:
    """The run's arms from repeated ``--arm`` (empty: a one-arm run on ``--target``)."""
    from simulator.driver.arms import check_arms, parse_arm

    arms = tuple(parse_arm(a, default_target=kw.get("target"), default_model=kw["model"])
                 for a in kw.get("arms") or ())
    if arms:
        check_arms(arms)
    elif not kw.get("target"):
        raise InputError("callsim run needs --target URL (or two or more --arm NAME=URL)")
    return arms


def _label(text: str | None) -> str | None:
    if text is None:
        return None
    label = " ".join(text.split())
    if not label:
        raise InputError("--label: empty; give a few words saying what the run is")
    if len(label) > 40:
        raise InputError(f"--label: {len(label)} characters; at most 40 fit the tables")
    return label


def _caller_audio(requested: str | None, transport: str, profile: str,
                  profiles_dir: Path | None) -> tuple[str, dict[str, Any] | None]:
    """The run's caller-audio mode and line (the profile's ``audio`` section) for an audio
    transport; ("tones", None) for text transports, which send no audio."""
    from simulator.transports.registry import transport_spec

    if not transport_spec(transport).audio:
        if requested is not None:
            click.echo(f"callsim: note: --caller-audio applies to audio transports only "
                       f"(not {transport})", err=True)
        return "tones", None
    from simulator.audio.caller_audio import resolve_caller_audio

    mode, notice = resolve_caller_audio(requested)
    if notice:
        click.echo(f"callsim: note: {notice}", err=True)
    if mode != "tts" or profile == "none":
        return mode, None
    from simulator.degradation import get_profile

    return mode, get_profile(profile, profiles_dir).audio.model_dump()


def _turn_taking(kw: dict[str, Any]) -> Any:
    from simulator.driver.turntaking import TurnTaking

    d = TurnTaking()
    return TurnTaking(
        greeting_wait_s=kw.get("greeting_wait", d.greeting_wait_s),
        greeting_max_s=kw.get("greeting_max", d.greeting_max_s),
        agent_silence_s=kw.get("agent_silence", d.agent_silence_s),
        reprompt_after_s=kw.get("reprompt_after", d.reprompt_after_s),
        reprompts=kw.get("reprompts", d.reprompts))


def _config_from_meta(d: dict[str, Any]) -> Any:
    from simulator.driver.arms import Arm
    from simulator.driver.arrivals import ArrivalSpec, Stage
    from simulator.driver.runner import RunConfig
    from simulator.transports.base import Deadlines

    d = dict(d)
    a = dict(d.pop("arrival"))
    a["stages"] = tuple(Stage(**s) for s in a.get("stages") or ())
    d["deadlines"] = Deadlines(**d["deadlines"])
    d.setdefault("pacing", "none")  # runs stored before pacing existed sent back to back
    d["arms"] = tuple(Arm(**x) for x in d.get("arms") or ())
    if "turn_taking" in d:
        from simulator.driver.turntaking import TurnTaking

        d["turn_taking"] = TurnTaking(**d["turn_taking"])
    return RunConfig(arrival=ArrivalSpec(**a), **d)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    from rich.console import Console

    from simulator.metrics.summary import render_summary

    Console().print(render_summary(summary))
    click.echo(f"stored in {summary.get('run_dir', '')}".rstrip())


# ----------------------------------------------------------------------------- soak
@main.command()
@click.option("--target", help="Agent base URL (default: start the reference agent).")
@click.option("--lines", default=20, show_default=True, type=click.IntRange(min=1),
              help="Long calls kept up at once.")
@click.option("--duration", default="5m", show_default=True, help="How long to soak (e.g. 30m).")
@click.option("--turn-gap", default=5.0, show_default=True, type=float,
              help="Seconds between caller turns: makes each call last minutes.")
@click.option("--profile", default="typical_call", show_default=True,
              help="Noise profile (its tool faults apply).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--api-key-env")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result (with memory/fd samples) as JSON.")
@_user_errors
def soak(target: str | None, lines: int, duration: str, turn_gap: float, profile: str,
         seed: int, api_key_env: str | None, output: Path | None) -> None:
    """Keep long calls up for a while; report stalls and disconnects per call-hour and
    whether memory and file descriptors stayed flat."""
    from simulator.driver.arrivals import parse_duration
    from simulator.driver.soak import soak as run_soak
    from simulator.driver.soak import write_result
    from simulator.personas import generate_calls, load_packs
    from simulator.transports.registry import api_key_from_env

    packs = load_packs()
    calls = _degrade(generate_calls(packs, "all", max(50, lines * 10), seed), profile, seed, None)
    secs = parse_duration(duration)
    key = api_key_from_env(api_key_env)

    def go(url: str, pid: int | None) -> Any:
        return _run_async(run_soak(calls, packs, target=url, lines=lines, duration_s=secs,
                                   gap_s=turn_gap, api_key=key, watch_pid=pid,
                                   progress=sys.stderr))

    if target:
        res = go(target, None)
    else:
        with running_agent("--ttft-ms", "150", "--token-ms", "10") as agent:
            res = go(agent.url, agent.pid)
    d = res.to_dict()
    if output:
        write_result(res, output)
    d.pop("samples")
    click.echo(json.dumps(d, indent=2, sort_keys=True))


# ----------------------------------------------------------------------------- report/export
@main.command()
@click.argument("run_refs", metavar="RUN [RUN...]", nargs=-1, required=True)
@click.option("--baseline", "baseline_ref", help="Compare with this run (path, id, 'last').")
@click.option("--rubric", "rubric_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --baseline: judge the two runs and put the verdict in the report. "
                   "With more than one run: add the routing table (which run wins where).")
@click.option("--allow-mismatch", is_flag=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report here.")
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("--full-json", is_flag=True,
              help="Print everything the HTML report shows, per call, as JSON.")
@_user_errors
def report(run_refs: tuple[str, ...], baseline_ref: str | None, rubric_path: Path | None,
           allow_mismatch: bool, output: Path | None, runs_dir: Path, as_json: bool,
           full_json: bool) -> None:
    """Report on a stored run (works on partial runs too). RUN is a path, an id or 'last'.

    Prints the summary; with -o writes one self-contained HTML file that works offline.
    More runs after the first (or a --baseline) with --rubric add the routing table of
    `callsim compare` to the report; the report itself is about the first RUN.
    """
    from simulator.metrics.summary import summarize
    from simulator.storage.store import RunStore, resolve_run

    run_ref, others = run_refs[0], run_refs[1:]
    run_dir = resolve_run(run_ref, runs_dir)
    base_dir = resolve_run(baseline_ref, runs_dir) if baseline_ref else None
    if others and rubric_path is None:
        raise InputError("report: a routing table across runs needs --rubric")
    gate_result = None
    routing = None
    if rubric_path is not None:
        if base_dir is None and not others:
            raise CallsimError("report --rubric needs --baseline RUN or more runs to judge")
        from simulator.gate import compare_to_json, judge, load_rubric

        rubric, sha = load_rubric(rubric_path)
        if base_dir is not None:
            b_out, b_meta, _ = _run_outcomes(str(base_dir), runs_dir)
            c_out, c_meta, _ = _run_outcomes(str(run_dir), runs_dir)
            gate_result = judge(b_out, c_out, rubric, b_meta, c_meta,
                                allow_mismatch=allow_mismatch, rubric_sha256=sha)
        refs = [*([str(base_dir)] if base_dir is not None else []), str(run_dir), *others]
        res, ids = _compare_runs(refs, runs_dir, rubric)
        routing = compare_to_json(res, run_ids=ids)
    if output is not None:
        from simulator.reports import write_report

        write_report(run_dir, output, baseline_dir=base_dir, gate=gate_result, routing=routing)
        click.echo(f"wrote {output}", err=True)
    if full_json:
        from simulator.reports import report_json

        click.echo(json.dumps(report_json(run_dir, transcripts=True), indent=2, sort_keys=True,
                              default=str))
        return
    store = RunStore(run_dir)
    summary = summarize(store)
    summary["run_dir"] = str(run_dir)
    store.close()
    _print_summary(summary, as_json)


@main.command()
@click.argument("run_ref")
@click.option("--endpoint", required=True,
              help="OpenAI-compatible base URL of the judge model, e.g. https://api.../v1")
@click.option("--model", required=True, help="Judge model name.")
@click.option("--api-key-env", help="Environment variable holding the judge's API key.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def judge(run_ref: str, endpoint: str, model: str, api_key_env: str | None, concurrency: int,
          runs_dir: Path, as_json: bool) -> None:
    """Second opinion from an LLM judge on refusals and tool-fault recovery.

    Lists where the judge disagrees with the deterministic grader; the gate numbers are not
    changed by it.
    """
    from simulator.metrics.llm_judge import judge_run
    from simulator.storage.store import RunStore, resolve_run
    from simulator.transports.registry import api_key_from_env

    key = api_key_from_env(api_key_env)
    store = RunStore(resolve_run(run_ref, runs_dir), redact=(key,) if key else ())
    try:
        res = _run_async(judge_run(store, endpoint, model, api_key=key,
                                   concurrency=concurrency))
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(res, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"judge {model}: {res['judged']} of {res['asked']} calls judged, "
                    f"{len(res['disagreements'])} disagreements")
    for col in ("call", "question", "deterministic", "judge", "judge's reason"):
        t.add_column(col)
    for d in res["disagreements"]:
        t.add_row(d["call_id"], d["question"], str(d["deterministic"]), str(d["judge"]),
                  d["reason"])
    Console().print(t)
    if res["unparseable"]:
        click.echo(f"{res['unparseable']} answers from the judge were not the JSON asked for",
                   err=True)


@main.command("grade-check")
@click.option("--corpus", type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled JSONL corpus (default: the one shipped in tests/data/).")
@click.option("--endpoint", help="OpenAI-compatible base URL of a judge model to compare.")
@click.option("--model", help="Judge model name (with --endpoint).")
@click.option("--api-key-env", help="Environment variable holding the judge's API key.")
@click.option("--misses", metavar="SPLIT", help="Also list what the detectors got wrong in SPLIT.")
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def grade_check(corpus: Path | None, endpoint: str | None, model: str | None,
                api_key_env: str | None, misses: str | None, as_json: bool) -> None:
    """Precision and recall of the refusal and fabrication detectors on a labelled corpus
    (per split), and an LLM judge's agreement with them when --endpoint is given."""
    from simulator.metrics.gradecheck import render, run_check
    from simulator.transports.registry import api_key_from_env

    key = api_key_from_env(api_key_env) if endpoint else None
    reports = run_check(corpus, endpoint=endpoint, model=model, api_key=key)
    if as_json:
        click.echo(json.dumps({s: r.to_dict() for s, r in reports.items()}, indent=2))
        return
    click.echo(render(reports, misses=misses))


@main.command("runs")
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def runs_cmd(runs_dir: Path, as_json: bool) -> None:
    """List stored runs: date, target, profile, calls, the four numbers, gate status."""
    from rich.console import Console

    from simulator.storage.history import list_runs, render_runs

    rows = list_runs(runs_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True, default=str))
    else:
        Console().print(render_runs(rows))


@main.command()
@click.argument("run_ref")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "turns-csv"]),
              default="jsonl", show_default=True,
              help="jsonl: every call and each of its turns (a 'record' key says which); "
                   "csv: one row per call; turns-csv: one row per agent turn.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def export(run_ref: str, fmt: str, output: Path | None, runs_dir: Path) -> None:
    """Export a run's calls and turns as JSONL or CSV."""
    from simulator.storage.store import RunStore, export_run, resolve_run

    store = RunStore(resolve_run(run_ref, runs_dir))
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        export_run(store, fmt, out)
    finally:
        if output:
            out.close()
        store.close()


# ----------------------------------------------------------------------------- degradation
@main.command()
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Extra directory of noise profile YAML files.")
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def profiles(profiles_dir: Path | None, as_json: bool) -> None:
    """List the noise profiles and their targets."""
    from rich.console import Console
    from rich.table import Table

    from simulator.degradation import load_profiles

    profs = load_profiles(profiles_dir)
    if as_json:
        click.echo(json.dumps({n: p.model_dump(mode="json") for n, p in profs.items()},
                              indent=2, sort_keys=True))
        return
    t = Table(title="noise profiles")
    for col in ("name", "target WER", "SNR dB", "packet loss", "description"):
        t.add_column(col)
    for name, p in profs.items():
        lo, hi = p.asr.target_wer
        t.add_row(name, f"{lo:.0%}-{hi:.0%}", _fmt_range(p.audio.snr_db),
                  f"{p.audio.packet_loss.rate:.0%}", p.description)
    Console().print(t)


def _fmt_range(r: Any) -> str:
    if r is None:
        return "none"
    if isinstance(r, list | tuple):
        return "-".join(f"{x:g}" for x in r)
    return str(r)


@main.command()
@click.argument("calls_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--profile", required=True, help="Noise profile name (see `callsim profiles`).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_user_errors
def degrade(calls_file: Path, profile: str, seed: int, profiles_dir: Path | None,
            output: Path) -> None:
    """Degrade call scripts with a noise profile (same seed, same bytes)."""
    from simulator.callscript import load_calls, write_calls
    from simulator.degradation import degrade_calls, get_profile

    prof = get_profile(profile, profiles_dir)
    n = write_calls(degrade_calls(load_calls(calls_file), prof, seed), output)
    click.echo(f"wrote {n} degraded calls ({profile}) to {output}", err=True)


# calibrate --audio recognises every utterance once per profile: cap N to keep it minutes.
AUDIO_UTTERANCES_MAX = 200


@main.command()
@click.option("--utterances", default=1000, show_default=True, type=click.IntRange(min=10),
              help=f"Utterances per profile (with --audio: at most {AUDIO_UTTERANCES_MAX}).")
@click.option("--calls", "n_calls", default=2000, show_default=True, type=click.IntRange(min=10),
              help="Calls over which perturbation and fault rates are observed.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--audio", is_flag=True,
              help="Speak utterances (see --speech), degrade them per profile's line, and "
                   "measure WER with pocketsphinx (extra 'asr').")
@click.option("--lm", "lm", type=click.Choice(["domain", "generic"]), default="domain",
              show_default=True,
              help="With --audio: the recogniser's language model, a trigram over the persona "
                   "packs' caller text or pocketsphinx's generic en-us one.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="With --audio: processes recognising profiles in parallel.")
@click.option("--speech", type=click.Choice(["piper", "espeak"]), default=None,
              help="With --audio: the speech that probes the lines: Piper's natural reference "
                   "voice (default when installed, extra 'asr') or the espeak-ng persona "
                   "voices that speak on calls.")
@click.option("--listener", is_flag=True,
              help="Measure callsim's listener instead: the reference agent's turns spoken "
                   "(Piper, or the voice agent's espeak-ng voice with --speech espeak), over "
                   "each profile's line, recognised with the listener's LM (docs/listener.md).")
@click.option("--recogniser", type=click.Choice(["pocketsphinx", "moonshine"]),
              default="pocketsphinx", show_default=True,
              help="With --listener: the listener's recogniser (callsim run --listener).")
@_user_errors
def calibrate(utterances: int, n_calls: int, seed: int, profiles_dir: Path | None,
              audio: bool, lm: str, workers: int, speech: str | None, listener: bool,
              recogniser: str) -> None:
    """Target vs. measured WER per profile, and observed perturbation/fault rates.

    Exits 1 when a profile misses its WER band (or strays more than 2 points from its
    centre), or when a rate falls outside its family-wise 99% interval. Each rate is also
    marked against its own 99% interval: with ~140 rates, one or two such marks are
    expected by chance alone, so the exit status uses the Bonferroni-corrected interval.

    With --audio, exits 1 when two profiles with disjoint text bands are not ordered by
    measured WER (by words heard when the recogniser's floor WER is too high to order).
    With --listener, exits 1 when the listener's WER on the clean line is over 15%.
    """
    from rich.console import Console

    from simulator.degradation import calibrate as run_calibration
    from simulator.degradation import load_profiles
    from simulator.degradation.calibrate import render_calibration

    if listener:
        _calibrate_listener(utterances, seed, profiles_dir, workers, speech, recogniser)
        return
    if audio:
        from simulator.audio.asr import RecogniserConfig
        from simulator.audio.calibrate_audio import (
            calibrate_audio,
            order_metric,
            order_violations,
            render_audio_calibration,
        )
        from simulator.audio.reference_voice import reference_voice_available

        if speech != "espeak":
            ok, why = reference_voice_available()
            if not ok and speech == "piper":
                raise InputError(f"--speech piper: {why}")
            if not ok:
                click.echo(f"calibrate --audio: espeak-ng speech ({why})", err=True)
            speech = "piper" if ok else "espeak"

        profs = load_profiles(profiles_dir)
        ordered = sorted(profs.values(), key=lambda p: sum(p.asr.target_wer))
        n = min(utterances, AUDIO_UTTERANCES_MAX)
        if n < utterances and (click.get_current_context().get_parameter_source("utterances")
                               is not click.core.ParameterSource.DEFAULT):
            click.echo(f"calibrate --audio: --utterances {utterances} capped at {n} "
                       "(real recognition costs ~0.3-1 s of CPU per utterance and profile)",
                       err=True)
        results = calibrate_audio(ordered, utterances=n, seed=seed, workers=workers,
                                  # click.Choice above admits only the Literal's values
                                  config=RecogniserConfig(lm=lm),  # type: ignore[arg-type]
                                  speech=speech)  # type: ignore[arg-type]
        Console().print(render_audio_calibration(results))
        violations = order_violations(results)
        click.echo(f"audio order by {order_metric(results)}: "
                   + ("ok" if not violations else "FAILED"), err=True)
        if violations:
            click.echo("out of order: " + "; ".join(violations), err=True)
            sys.exit(1)
        return
    res = run_calibration(list(load_profiles(profiles_dir).values()), utterances, seed,
                          calls=n_calls)
    Console().print(render_calibration(res))
    from scipy.stats import binom

    k = max(1, sum(len(r.rates) for r in res))
    marked = sum(not x.ok for r in res for x in r.rates)
    problems = [f"{r.profile}: WER {r.measured_wer:.1%} off target" for r in res
                if not (r.in_band and r.near_centre)]
    for r in res:
        for x in r.rates:
            if x.chances:
                lo, hi = binom.interval(1 - 0.01 / k, x.chances, x.configured)
                if not lo <= x.events <= hi:
                    problems.append(f"{r.profile}: {x.name} {x.events}/{x.chances} vs "
                                    f"configured {x.configured:g}")
    click.echo(f"{marked} of {k} rates outside their own 99% interval (about {k / 100:.1f} "
               "expected by chance); family-wise 99% check: "
               + ("ok" if not problems else "FAILED"), err=True)
    if problems:
        click.echo("out of target: " + "; ".join(problems), err=True)
        sys.exit(1)


LISTENER_PROFILES = ("clean", "typical_call")
LISTENER_CLEAN_MAX_WER = 0.15


def _calibrate_listener(utterances: int, seed: int, profiles_dir: Path | None, workers: int,
                        speech: str | None, recogniser: str = "pocketsphinx") -> None:
    """``calibrate --listener``: the listener's WER on agent speech per line profile."""
    from rich.console import Console

    from simulator.audio.calibrate_audio import calibrate_audio, render_audio_calibration
    from simulator.audio.listener import listener_config
    from simulator.degradation import load_profiles

    if speech is None:
        speech = "piper"
    profs = load_profiles(profiles_dir)
    missing = [p for p in LISTENER_PROFILES if p not in profs]
    if missing:
        raise InputError(f"calibrate --listener: profile(s) {', '.join(missing)} not found")
    n = min(utterances, AUDIO_UTTERANCES_MAX)
    results = calibrate_audio([profs[p] for p in LISTENER_PROFILES], utterances=n, seed=seed,
                              workers=workers, config=listener_config(recogniser),
                              speech=speech,  # type: ignore[arg-type]
                              source="agent")
    Console().print(render_audio_calibration(results))
    for r in results:
        click.echo(f"listener WER ({recogniser}, {speech}, {r.profile}): {r.wer:.1%} over "
                   f"{r.words} words "
                   f"of {r.utterances} agent turns (undegraded: {r.floor_wer:.1%})")
    clean = next(r for r in results if r.profile == "clean")
    if clean.wer > LISTENER_CLEAN_MAX_WER:
        click.echo(f"listener WER on the clean line {clean.wer:.1%} is over "
                   f"{LISTENER_CLEAN_MAX_WER:.0%}: FAILED", err=True)
        sys.exit(1)


@main.command()
@click.argument("calls_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--profile", required=True, help="Noise profile whose audio section to apply.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def render(calls_file: Path, profile: str, seed: int, profiles_dir: Path | None,
           output: Path) -> None:
    """Render caller turns to degraded telephone audio: one WAV per turn + manifest.json."""
    from simulator.audio.chain import AudioParams
    from simulator.audio.render import render_calls
    from simulator.callscript import load_calls
    from simulator.degradation import get_profile

    prof = get_profile(profile, profiles_dir)
    params = AudioParams.from_dict(prof.audio, noise_dir=profiles_dir)
    calls = load_calls(calls_file)
    manifest = render_calls(calls, params, output, seed)
    click.echo(f"rendered {sum(len(c.turns) for c in calls)} turns to {output} "
               f"(manifest: {manifest})", err=True)


# ----------------------------------------------------------------------------- gate
def _run_outcomes(ref: str, runs_dir: Path) -> tuple[list[Any], dict[str, Any], Path]:
    from simulator.storage.store import RunStore, resolve_run

    run_dir = resolve_run(ref, runs_dir)
    store = RunStore(run_dir)
    try:
        return store.outcomes(), store.meta(), run_dir
    finally:
        store.close()


def _side(ref: str, runs_dir: Path) -> tuple[list[Any], dict[str, Any], Path, str | None]:
    """A gate side from ``RUN`` or ``RUN:ARM`` (one arm of an interleaved A/B run):
    its outcomes, run meta, run directory and arm (None: the whole run)."""
    from simulator.errors import StoreError
    from simulator.storage.store import RunStore, resolve_run

    arm: str | None = None
    try:
        run_dir = resolve_run(ref, runs_dir)
    except StoreError:
        if ":" not in ref:
            raise
        ref, arm = ref.rsplit(":", 1)
        run_dir = resolve_run(ref, runs_dir)
    store = RunStore(run_dir)
    try:
        meta = store.meta()
        arms = list(meta.get("arms") or [])
        if arm is None and arms:
            raise InputError(f"{ref}: an A/B run with arms {', '.join(arms)}: name one as "
                             f"{ref}:ARM, or give the run alone with --arms")
        if arm is not None and arm not in arms:
            known = f"its arms are {', '.join(arms)}" if arms else "it has no arms"
            raise InputError(f"{ref}: no arm {arm!r} in this run ({known})")
        return store.outcomes(arm=arm), meta, run_dir, arm
    finally:
        store.close()


def _gate_sides(refs: tuple[str, ...], arms_opt: str | None, runs_dir: Path
                ) -> tuple[str, str]:
    """(BASELINE, CANDIDATE) refs from the gate's arguments: two refs, or one A/B run whose
    arms are named by ``--arms A,B`` (default: its two arms)."""
    if len(refs) == 2:
        if arms_opt:
            raise InputError("--arms goes with one A/B run, not with two runs")
        return refs[0], refs[1]
    if len(refs) != 1:
        raise InputError(f"gate takes BASELINE CANDIDATE or one A/B run, got {len(refs)} "
                         "arguments")
    _, meta, run_dir = _run_outcomes(refs[0], runs_dir)
    arms = list(meta.get("arms") or [])
    if not arms:
        raise InputError(f"{refs[0]}: not an A/B run (no arms): give BASELINE CANDIDATE")
    if arms_opt:
        pick = [a.strip() for a in arms_opt.split(",")]
        if len(pick) != 2:
            raise InputError(f"bad --arms {arms_opt!r}: expected BASELINE,CANDIDATE")
    elif len(arms) == 2:
        pick = arms
    else:
        raise InputError(f"{refs[0]} has arms {', '.join(arms)}: choose two with --arms A,B")
    return f"{run_dir}:{pick[0]}", f"{run_dir}:{pick[1]}"


@main.command()
@click.argument("refs", nargs=-1, required=True, metavar="BASELINE [CANDIDATE]")
@click.option("--rubric", "rubric_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--arms", "arms_opt", metavar="A,B",
              help="One A/B run: judge arm B (candidate) against arm A (baseline).")
@click.option("--aa", is_flag=True,
              help="A/A calibration: the arms call the same agent; report how often the "
                   "rubric fails it against itself (exit 1 above 1 - confidence).")
@click.option("--draws", default=100, show_default=True, type=click.IntRange(min=1, max=2000),
              help="--aa: relabelled draws to judge.")
@click.option("--allow-mismatch", is_flag=True,
              help="Judge runs recorded under another rubric, profile or scenario set.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a JUnit XML file for CI systems.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def gate(refs: tuple[str, ...], rubric_path: Path, arms_opt: str | None, aa: bool,
         draws: int, allow_mismatch: bool, junit: Path | None, as_json: bool,
         runs_dir: Path) -> None:
    """Judge CANDIDATE against BASELINE: exit 0 pass, 1 fail, 2 cannot judge.

    Either two runs (BASELINE may be 'last-passed': the last candidate that passed a gate),
    two arms of one A/B run as RUN:A RUN:B, or one A/B run alone (its two arms, or --arms
    A,B). Arms of one run are paired by script and need no drift policy; two separate runs
    get the rubric's drift policy (docs/gate.md).
    """
    from rich.console import Console

    from simulator.gate import judge, load_rubric, render, to_json, write_junit
    from simulator.storage.history import last_passed, mark_gate

    rubric, sha = load_rubric(rubric_path)
    baseline, candidate = _gate_sides(refs, arms_opt, runs_dir)
    if baseline == "last-passed":
        lp = last_passed(runs_dir)
        if lp is None:
            raise CallsimError(f"{runs_dir}: no run has passed a gate yet (baseline last-passed)")
        baseline = str(lp)
    b_out, b_meta, b_dir, b_arm = _side(baseline, runs_dir)
    c_out, c_meta, c_dir, c_arm = _side(candidate, runs_dir)
    same_run = b_dir.resolve() == c_dir.resolve()
    if same_run and b_arm == c_arm:
        raise InputError(f"{candidate}: baseline and candidate are the same calls")
    interleaved = same_run and b_arm is not None
    result = judge(b_out, c_out, rubric, b_meta, c_meta, allow_mismatch=allow_mismatch,
                   rubric_sha256=sha, interleaved=interleaved)
    if interleaved:
        from dataclasses import replace

        result = replace(result, arms=(str(b_arm), str(c_arm)))
    if aa:
        _gate_aa(result, b_out, c_out, rubric, draws, interleaved, as_json)
        return
    if result.exit_code in (0, 1) and c_arm is None:
        mark_gate(c_dir.parent, c_dir.name, result.exit_code == 0)
    if as_json:
        click.echo(json.dumps(to_json(result), indent=2, sort_keys=True))
    else:
        Console().print(render(result))
    if junit is not None:
        write_junit(result, junit)
    sys.exit(result.exit_code)


def _gate_aa(result: Any, b_out: list[Any], c_out: list[Any], rubric: Any, draws: int,
             interleaved: bool, as_json: bool) -> None:
    from rich.console import Console

    from simulator.gate.aa import calibrate
    from simulator.gate.output import aa_to_json, render_aa

    if not interleaved:
        raise InputError("--aa needs the two arms of one interleaved A/B run (callsim run "
                         "--arm a=URL --arm b=URL, the same agent twice): two separate runs "
                         "give one draw, and their drift is what the check is about; judge "
                         "them without --aa")
    res = calibrate(b_out, c_out, rubric, result, draws=draws)
    if as_json:
        click.echo(json.dumps(aa_to_json(res), indent=2, sort_keys=True))
    else:
        Console().print(render_aa(res))
    sys.exit(0 if res.ok else 1)


def _compare_sides(ref: str, runs_dir: Path) -> list[tuple[list[Any], dict[str, Any], str]]:
    """What ``compare`` ranks for one argument, as (outcomes, meta, id): ``RUN``, every arm
    of an A/B run ``RUN`` (id ``RUN:ARM``, labelled by the arm), or one arm ``RUN:ARM``."""
    from simulator.errors import StoreError

    try:
        _, meta, run_dir = _run_outcomes(ref, runs_dir)
    except StoreError:
        meta, run_dir = {}, None
    arms = list(meta.get("arms") or []) if run_dir is not None else []
    refs = [f"{run_dir}:{a}" for a in arms] if arms else [ref]
    out = []
    for r in refs:
        outcomes, m, d, arm = _side(r, runs_dir)
        if arm is None:
            out.append((outcomes, m, d.name))
        else:
            out.append((outcomes, {**m, "label": arm}, f"{d.name}:{arm}"))
    return out


@main.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--rubric", "rubric_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-v", "--verbose", is_flag=True,
              help="Under each segment, every comparison behind it with the gate's reason.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--width", type=click.IntRange(min=60),
              help="Output width (default: the terminal's, at most 80).")
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def compare(runs: tuple[str, ...], rubric_path: Path, verbose: bool, as_json: bool,
            width: int | None, runs_dir: Path) -> None:
    """Which run wins where: one line per segment (all calls, each vertical, profile, scenario).

    Runs are named by their --label, or by what differs between them (model, agent profile,
    target). Each line: the segment, the winner or 'no winner', the number that decides and
    its interval; winners are controlled across all segments (Holm, docs/gate.md).
    """
    from simulator.gate import compare_to_json, load_rubric, render_compare

    rubric, _ = load_rubric(rubric_path)
    res, ids = _compare_runs(runs, runs_dir, rubric)
    if as_json:
        click.echo(json.dumps(compare_to_json(res, run_ids=ids), indent=2, sort_keys=True))
        return
    import shutil

    w = width or min(80, shutil.get_terminal_size((80, 24)).columns)
    click.echo(render_compare(res, width=w, verbose=verbose, run_ids=ids))


def _compare_runs(refs: Sequence[str], runs_dir: Path, rubric: Any) -> tuple[Any, dict[str, str]]:
    """Compare stored runs by label; returns the result and each label's run id."""
    from simulator.gate import compare as run_compare
    from simulator.gate.labels import label_runs

    loaded = [side for ref in refs for side in _compare_sides(ref, runs_dir)]
    ids = [i for _, _, i in loaded]
    if len(set(ids)) != len(ids):
        raise InputError("compare: the same run is named twice")
    if len(loaded) < 2:
        raise InputError("compare needs at least two runs (or an A/B run's arms)")
    labels = label_runs([m for _, m, _ in loaded], ids)
    res = run_compare({lab: out for lab, (out, _, _) in zip(labels, loaded, strict=True)},
                      rubric, metas={lab: m for lab, (_, m, _) in zip(labels, loaded, strict=True)},
                      made_in={lab: i.split(":")[0] for lab, i in zip(labels, ids, strict=True)})
    return res, dict(zip(labels, ids, strict=True))


@main.command()
@click.argument("run_ref")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the frozen call scripts (JSONL).")
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--personas", "personas_dir", type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def freeze(run_ref: str, output: Path, runs_dir: Path, personas_dir: Path | None) -> None:
    """Freeze the conversations of a run with an LLM caller (RUN: path, id or 'last') into
    call scripts that replay with no model: `callsim run --calls OUTPUT` replays them, and
    falls back to the rule-based caller where an agent answers differently."""
    from simulator.callscript import write_calls
    from simulator.personas import load_packs
    from simulator.personas.freeze import freeze_run
    from simulator.storage.store import resolve_run

    run_dir = resolve_run(run_ref, runs_dir)
    n = write_calls(freeze_run(run_dir, load_packs(personas_dir)), output)
    click.echo(f"froze {n} conversations of {run_dir.name} into {output}", err=True)


# ----------------------------------------------------------------------------- agent / tools
@main.group()
def agent() -> None:
    """The reference agent: a deterministic voice agent on loopback."""


@agent.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="0 = any free port.")
@click.option("--ttft-ms", default=0.0, show_default=True, type=float)
@click.option("--token-ms", default=0.0, show_default=True, type=float)
@click.option("--fabricate-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1))
@click.option("--arg-error-rate", "arg_error_rates", multiple=True, metavar="[PACK=]RATE",
              help="Share of tool calls with one argument corrupted: RATE for every pack, or "
                   "PACK=RATE for one pack only (repeat the option, or PACK=RATE,PACK=RATE).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--style", default="template", show_default=True,
              type=click.Choice(["template", "varied"]),
              help="How the agent talks. 'template': the pack's one question per slot. "
                   "'varied': like an LLM agent: many phrasings, two slots in one question, "
                   "read-backs ('Just to confirm, ...?'), small talk; seeded per call.")
@click.option("--personas", "personas_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--stt", default="auto", show_default=True,
              type=click.Choice(["auto", "pocketsphinx", "none"]),
              help="Voice endpoints: how the agent hears the caller. 'pocketsphinx': it "
                   "recognises each turn offline (in a worker process), answers what it heard "
                   "and speaks with pyttsx3/espeak-ng; time to first audio is then "
                   "recognition + policy + TTS + --ttft-ms. 'none': end-of-speech detection "
                   "only, synthetic reply audio, canned replies unless the caller sends text "
                   "hints; time to first audio is exactly the VAD hangover + --ttft-ms (use "
                   "it for timing work). 'auto': pocketsphinx when installed, else none.")
@click.option("--asr-workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Voice endpoints, --stt pocketsphinx: recogniser processes.")
@click.option("-v", "--verbose", is_flag=True,
              help="Log each recognised caller turn (heard words, recognition time) to stderr.")
@click.option("--vad-silence-ms", default=500.0, show_default=True, type=float,
              help="Voice endpoints: silence that ends the caller's turn.")
@click.option("--tools-url", help="Voice endpoints: base URL of the HTTP tool backend "
                                  "(callsim's tool relay) the Twilio endpoint calls.")
@click.option("--voice", default="auto", show_default=True,
              type=click.Choice(["auto", "piper", "espeak", "tones"]),
              help="Voice endpoints: how replies sound. 'auto': Piper's reference voice when "
                   "installed (extra 'asr') and the agent hears, espeak-ng when it hears "
                   "without Piper, synthetic tones with --stt none.")
@click.option("--greet-delay-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Twilio endpoint: extra delay before the greeting (a slow bot).")
@click.option("--silent", is_flag=True,
              help="Twilio endpoint: never speak (to try a caller's re-prompts).")
@_user_errors
def agent_serve(host: str, port: int, ttft_ms: float, token_ms: float, fabricate_rate: float,
                arg_error_rates: tuple[str, ...], seed: int, style: str,
                personas_dir: Path | None, stt: str,
                asr_workers: int, verbose: bool, vad_silence_ms: float,
                tools_url: str | None, voice: str, greet_delay_ms: float,
                silent: bool) -> None:
    """Serve the reference agent until interrupted.

    Endpoints: OpenAI Chat Completions at /v1/chat/completions (streaming and not), Twilio
    Media Streams at ws://HOST:PORT/twilio, and a Realtime-style API at
    ws://HOST:PORT/v1/realtime. Binds 127.0.0.1 unless told otherwise.
    """
    from simulator.agent import AgentConfig
    from simulator.agent.voice import VoiceAgentConfig, resolve_stt
    from simulator.personas import load_packs

    _warn_public_bind(host)
    if verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    stt, notice = resolve_stt(stt)
    if notice:
        click.echo(f"callsim: note: {notice}", err=True)
    packs = load_packs(personas_dir)
    rate, per_pack = _arg_error_rates(arg_error_rates, packs)
    cfg = AgentConfig(ttft_ms=ttft_ms, token_ms=token_ms, fabricate_rate=fabricate_rate,
                      arg_error_rate=rate, arg_error_packs=per_pack, seed=seed, style=style)
    voice_cfg = VoiceAgentConfig(ttft_ms=ttft_ms, vad_silence_ms=vad_silence_ms, stt=stt,
                                 asr_workers=asr_workers, tools_url=tools_url, policy=cfg,
                                 voice=voice, greet_delay_ms=greet_delay_ms, silent=silent)
    from simulator.agent.serve import serve_agent

    _run_async(serve_agent(cfg, voice_cfg, host, port, packs))


def _arg_error_rates(values: Sequence[str], packs: Any
                     ) -> tuple[float, tuple[tuple[str, float], ...]]:
    """``--arg-error-rate`` values: one plain RATE (every pack) and PACK=RATE overrides."""
    rate = 0.0
    per_pack: dict[str, float] = {}
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            pack, sep, text = part.rpartition("=")
            try:
                r = float(text)
            except ValueError:
                raise InputError(f"--arg-error-rate {part!r}: expected RATE or PACK=RATE, "
                                 "e.g. 0.2 or healthcare=0.2") from None
            if not 0.0 <= r <= 1.0:
                raise InputError(f"--arg-error-rate {part!r}: the rate must be between 0 and 1")
            if not sep:
                rate = r
            elif pack not in packs:
                raise InputError(f"--arg-error-rate {part!r}: no pack '{pack}'; known are "
                                 f"{', '.join(sorted(packs))}")
            else:
                per_pack[pack] = r
    return rate, tuple(sorted(per_pack.items()))


def _warn_public_bind(host: str) -> None:
    if host not in ("127.0.0.1", "::1", "localhost"):
        click.secho(f"WARNING: binding {host}: this server is reachable from other machines; "
                    "it has no authentication.", fg="red", bold=True, err=True)


@main.group()
def tools() -> None:
    """The simulated tool backend."""


@tools.command("serve")
@click.option("--calls", "calls_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
@click.option("--db", default=":memory:", show_default=True, help="SQLite file or :memory:.")
@click.option("--personas", "personas_dir", type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def tools_serve(calls_file: Path, host: str, port: int, db: str,
                personas_dir: Path | None) -> None:
    """Serve the tool backend over HTTP (POST /tools/NAME, header X-Callsim-Call-Id)."""
    from aiohttp import web

    from simulator.callscript import load_calls
    from simulator.personas import load_packs
    from simulator.tools.backend import ToolBackend, create_tools_app

    _warn_public_bind(host)
    backend = ToolBackend(load_packs(personas_dir), db)
    backend.load(load_calls(calls_file))
    web.run_app(create_tools_app(backend), host=host, port=port, print=lambda m: click.echo(m))


# ----------------------------------------------------------------------------- demo
@main.command()
@click.option("--count", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--concurrency", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--profile", default="none", show_default=True)
@click.option("--ttft-ms", default=120.0, show_default=True, type=float,
              help="The reference agent's think time before its first token.")
@click.option("--token-ms", default=5.0, show_default=True, type=float)
@click.option("--runs-dir", default="runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@_user_errors
def demo(count: int, concurrency: int, seed: int, profile: str, ttft_ms: float, token_ms: float,
         runs_dir: Path, as_json: bool) -> None:
    """Start the reference agent, replay COUNT calls across all packs, print the numbers."""
    click.echo(f"starting the reference agent (ttft {ttft_ms:g} ms, {token_ms:g} ms/token)...",
               err=True)
    with agent_process("--ttft-ms", str(ttft_ms), "--token-ms", str(token_ms)) as url:
        click.echo(f"reference agent at {url}", err=True)
        summary = run_from_options(
            target=url, transport=DEFAULT_TRANSPORT, model="callsim-reference", api_key_env=None,
            calls_file=None, pack="all", personas_dir=None, profile=profile, profiles_dir=None,
            count=count, duration=None, warmup="0", concurrency=concurrency, rate=None,
            arrival=None, burstiness=None, stages=None, trace=None, max_starts=None, seed=seed,
            max_rps=None, max_active=None,
            runs_dir=runs_dir, resume_run=None, agent_profile=None, rubric=None, no_pauses=True,
            pacing="none",  # a quick look at the numbers: turns back to back
            connect_timeout=5.0, first_byte_timeout=30.0, stall_timeout=10.0,
            call_timeout=600.0, tool_timeout=10.0, max_reply_mb=8.0,
        )
    summary["run_dir"] = str(Path(runs_dir) / summary["run_id"])
    _print_summary(summary, as_json)


if __name__ == "__main__":  # pragma: no cover
    main()
