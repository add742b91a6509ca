"""The records of a run: one per agent turn, one per call, and each call's graded outcome.

A ``TurnRecord`` is one timed agent turn, the same type for text and audio calls (audio-only
fields are None on text calls). A ``CallOutcome`` is one replayed call after grading: its
per-turn timings, the tool-call argument score, whether it refused / fabricated, and its
cost. A ``CallRecord`` is everything the run store keeps of a call. The store's columns and
``callsim export`` are derived from these types; the gate numbers, bootstrap intervals and
breakdowns are computed from a list of outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One agent turn: the request that ended the caller's input (or a tool result) and the
    agent's answer. Times in ms are measured from the end of the caller's input; ``*_s``
    are seconds from the run's time zero."""

    seq: int                                  # order within the call
    caller_turn: int | None                   # the caller turn this answers
    phase: str                                # "caller" or "tool" (answer to tool results)
    # When the caller's input was due: a paced caller turn's end of speech, else the call's
    # scheduled start (its first turn, open loop only); None for tool follow-ups.
    scheduled_s: float | None
    sent_s: float | None
    conn_setup_ms: float | None               # connection set-up (kept out of ttft)
    ttft_ms: float | None                     # first content: text, tool call or audio
    ttft_from_schedule_ms: float | None       # the same from ``scheduled_s``
    last_byte_ms: float | None
    loop_lag_ms: float | None                 # the driver's loop lag when the turn ended
    stalls: int
    max_gap_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    interrupted: bool
    error: str | None
    text: str = ""
    # audio calls only
    ttfa_ms: float | None = None              # first audio frame
    first_voiced_ms: float | None = None      # first frame with speech in it
    first_text_ms: float | None = None        # first text (transcript) delta
    agent_speech_s: float | None = None       # seconds of voiced agent audio
    barge_in_reaction_ms: float | None = None  # caller speech onset -> agent stopped
    # Where the turn's words came from: "text" (the protocol carried them, e.g. Realtime
    # transcripts), "audio" (callsim's listener heard them), "" (neither).
    text_source: str | None = None
    heard_text: str | None = None             # the listener's transcript of the turn's audio
    listen_ms: float | None = None            # the listener's recognition time
    agent_end_ms: float | None = None         # end of the agent's last voiced audio (played out)
    talk_overs: int | None = None             # agent speech started while the caller spoke
    clears: int | None = None                 # Twilio ``clear`` / Realtime cleared events
    # phone calls (sip), on the call's first turn only
    post_dial_delay_ms: float | None = None   # INVITE sent -> first 180/183 (or the 200)
    answer_to_audio_ms: float | None = None   # call answered (200 OK) -> first agent RTP
    # webrtc, on the call's first turn only: how long aiortc held the agent's audio (median
    # over the call's frames: RTP packet arrival -> decoded frame handed over)
    jitter_buffer_ms: float | None = None


#: Per-turn fields the run store keeps as columns (the text lives in the transcript).
TURN_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(TurnRecord) if f.name != "text")

#: Per-turn timings an outcome carries for the gate (caller-phase turns of the call).
TURN_TIMINGS: tuple[str, ...] = ("ttft_ms", "ttfa_ms", "first_voiced_ms",
                                 "barge_in_reaction_ms", "agent_speech_s")


def turn_from_row(row: dict[str, Any]) -> TurnRecord:
    """A ``TurnRecord`` from a stored or exported row (unknown keys ignored)."""
    names = {f.name for f in fields(TurnRecord)}
    return TurnRecord(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True, slots=True)
class CallOutcome:
    call_id: str            # unique within a run
    script_id: str          # the call script's call_id: pairs calls across runs
    pack: str               # vertical
    profile: str            # noise profile ("none": scripts replayed as written)
    intent: str             # scenario kind
    ok: bool                # finished without a transport error
    error: str | None       # error category when not ok
    ttft_ms: tuple[float, ...]   # per turn: end of caller input -> first content (ms)
    arg_total: int          # expected tool-call arguments
    arg_correct: int        # of those, matched after normalisation
    strict_pass: bool       # every expected call made with all arguments right, no extra writes
    record_exists: bool
    refused: bool           # agent said it could not find the record
    fabricated: bool        # agent asserted a record detail found in no tool result / caller turn
    cost_usd: float
    cost_estimated: bool = False          # usage absent from the agent's responses
    injected_wer: float | None = None
    extra: dict[str, float] = field(default_factory=dict)   # guard metrics of a custom grader
    # Audio calls, per caller turn that has the value (empty on text calls):
    ttfa_ms: tuple[float, ...] = ()          # end of caller speech -> first agent audio frame
    first_voiced_ms: tuple[float, ...] = ()  # end of caller speech -> first voiced agent audio
    barge_in_reaction_ms: tuple[float, ...] = ()  # caller speech onset -> agent stopped
    agent_speech_s: tuple[float, ...] = ()   # seconds of voiced agent audio per turn
    arm: str = ""           # the arm of an interleaved A/B run ("" in a one-arm run)
    # When a model played the caller (--caller llm): its own usage and cost, apart from the
    # agent's ``cost_usd``, and the values it said that its script does not hold (> 0: the
    # call is flagged and left out of grading).
    caller_prompt_tokens: int = 0
    caller_completion_tokens: int = 0
    caller_cost_usd: float = 0.0
    caller_invented: int = 0
    # A frozen fixture replayed: the caller turn from which the agent answered differently
    # and the rule-based caller took over (None: replayed whole, or not a frozen fixture).
    frozen_diverged_at: int | None = None
    # Agents that call tools over callsim's HTTP relay: whether this call's agent sent the
    # relay any request (None: tools answered in-band, always seen). When no call of a run
    # did, the agent keeps its own backend and tool accuracy is "not observed", not 0.
    tools_observed: bool | None = None
    # Audio calls: what refusal / fabrication were graded from ("text": words the protocol
    # carried, "audio": words callsim's listener heard, "mixed", "none": no words at all),
    # and the call's turn-taking counts.
    graded_from: str = "text"
    talk_overs: int = 0       # the agent started speaking while the caller was speaking
    clears: int = 0           # the agent flushed its own audio (Twilio ``clear``)
    reprompts: int = 0        # the caller said "Hello? Are you still there?"
    cost_basis: str = "tokens"  # "tokens" or "per_minute" (the profile's voice rate)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished, graded call: everything the run store records for it."""

    idx: int
    outcome: CallOutcome
    warmup: bool
    scheduled_s: float | None
    started_s: float
    finished_s: float
    dispatch_delay_ms: float | None
    turns: list[TurnRecord]
    events: list[tuple[str, dict[str, Any]]]
    transcript: dict[str, Any]
