"""Agent profiles: what a target costs (price table) and how to reach it.

A profile is YAML written by a user (validated, extra keys forbidden). Prices are in USD per
million tokens (text and audio, input, cached input and output) plus per-minute rates for
telephony and audio. The built-in ``reference`` profile prices the reference agent like a
small hosted model so that cost numbers are realistic in the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import ProfileError, format_validation_error
from simulator.yamlio import read_yaml_mapping


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(0.15, ge=0)
    cached_input_per_mtok: float = Field(0.075, ge=0)
    output_per_mtok: float = Field(0.60, ge=0)
    audio_input_per_mtok: float = Field(10.0, ge=0)
    audio_output_per_mtok: float = Field(20.0, ge=0)
    telephony_per_min: float = Field(0.0085, ge=0)
    audio_per_min: float = Field(0.0, ge=0)
    # What a voice platform bills per minute of call, all in (speech recognition, model and
    # speech): the cost of an audio call whose protocol reports no token usage (Twilio
    # Media Streams), flagged as estimated. Telephony and audio rates are added to it.
    voice_agent_per_min: float = Field(0.07, ge=0)


class AgentProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "reference"
    model: str = "callsim-reference"
    prices: Prices = Field(default_factory=Prices)


def load_agent_profile(path: str | Path | None) -> AgentProfile:
    """The profile in ``path``, or the built-in reference profile when ``path`` is None."""
    if path is None:
        return AgentProfile()
    p = Path(path)
    data = read_yaml_mapping(p, ProfileError)
    try:
        return AgentProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(str(p), exc)) from None


def session_cost(usage: dict[str, Any], minutes: float, prices: Prices) -> float:
    """USD for one session from summed usage (OpenAI field names) and its duration."""
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    audio_in = int(details.get("audio_tokens") or 0)
    out_details = usage.get("completion_tokens_details") or {}
    audio_out = int(out_details.get("audio_tokens") or 0)
    prompt = int(usage.get("prompt_tokens") or 0) - cached - audio_in
    completion = int(usage.get("completion_tokens") or 0) - audio_out
    usd = (
        max(prompt, 0) * prices.input_per_mtok
        + cached * prices.cached_input_per_mtok
        + max(completion, 0) * prices.output_per_mtok
        + audio_in * prices.audio_input_per_mtok
        + audio_out * prices.audio_output_per_mtok
    ) / 1e6
    return usd + minutes * (prices.telephony_per_min + prices.audio_per_min)


def voice_minute_cost(minutes: float, prices: Prices) -> float:
    """USD for ``minutes`` of an audio call billed by the minute (no token usage known)."""
    return minutes * (prices.voice_agent_per_min + prices.telephony_per_min
                      + prices.audio_per_min)


def add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Sum ``usage`` into ``total`` (nested ``*_details`` dicts too)."""
    for k, v in usage.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            total[k] = total.get(k, 0) + v
        elif isinstance(v, dict):
            add_usage(total.setdefault(k, {}), v)
