"""Arrival schedules: when each call of a run starts.

Pure and seeded: an :class:`ArrivalSpec` plus bounds and a seed give a numpy array of start
offsets (seconds from the run start), the same in any process. Open-loop models (poisson,
gamma, constant, stages, trace) are registered by name; ``closed`` (N concurrent calls) has
no schedule: the driver keeps ``concurrency`` calls in flight instead.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from simulator.errors import InputError
from simulator.registry import Registry
from simulator.seeding import np_rng

#: Start offsets in seconds from the run start, float64, non-decreasing.
Schedule = np.ndarray

#: A guard against a typo such as ``--rate 20000/s --duration 10h`` eating the machine.
MAX_ARRIVALS = 10_000_000

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_RE = re.compile(rf"^\s*({_NUM})\s*(?:/\s*([a-z]+))?\s*$", re.IGNORECASE)
_DURATION_PART_RE = re.compile(rf"({_NUM})\s*(ms|s|m|h)?", re.IGNORECASE)


# --------------------------------------------------------------------------- parsers


def parse_rate(text: str | float | int) -> float:
    """Calls per second from ``"20/s"``, ``"300/m"``, ``"2/h"`` or a bare number (per second).

    Raises ``InputError`` for anything else, or a negative rate.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value, per = float(text), 1.0
    else:
        m = _RATE_RE.match(str(text))
        unit = (m.group(2) or "s").lower() if m else ""
        if m is None or unit not in _RATE_UNITS:
            raise InputError(
                f"bad rate {text!r}: expected a number of calls per second, minute or hour "
                "like '20/s', '300/m', '2/h' or '5'"
            )
        value, per = float(m.group(1)), _RATE_UNITS[unit]
    if not math.isfinite(value) or value < 0:
        raise InputError(f"bad rate {text!r}: must be a finite number >= 0")
    return value / per


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``"90s"``, ``"10m"``, ``"1h"``, ``"1h30m"``, ``"500ms"`` or a bare number.

    Raises ``InputError`` for anything else, or a negative duration.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip()
        pos, seconds, parts = 0, 0.0, 0
        for m in _DURATION_PART_RE.finditer(s):
            if m.start() != pos or (parts and m.group(2) is None):
                break
            seconds += float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "s").lower()]
            pos, parts = m.end(), parts + 1
        if parts == 0 or pos != len(s):
            raise InputError(
                f"bad duration {text!r}: expected seconds or a duration like '90s', '10m', "
                "'1h', '1h30m' or '45'"
            )
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"bad duration {text!r}: must be a finite number >= 0")
    return seconds


@dataclass(frozen=True)
class Stage:
    """One stage of a staged ramp: ``rate`` calls/s (Poisson) for ``duration_s`` seconds."""

    duration_s: float
    rate: float


def parse_stages(text: str) -> tuple[Stage, ...]:
    """Stages from ``"1m:5/s,5m:20/s,1m:0/s"`` (``DURATION:RATE``, comma-separated).

    Raises ``InputError`` naming the bad stage.
    """
    items = [p.strip() for p in str(text).split(",")]
    if not any(items):
        raise InputError(f"bad stages {text!r}: expected DURATION:RATE,... like '1m:5/s,5m:20/s'")
    stages: list[Stage] = []
    for i, item in enumerate(items, start=1):
        dur, sep, rate = item.partition(":")
        if not sep:
            raise InputError(
                f"bad stage {i} {item!r} in {text!r}: expected DURATION:RATE like '5m:20/s'"
            )
        try:
            stage = Stage(parse_duration(dur), parse_rate(rate))
        except InputError as exc:
            raise InputError(f"bad stage {i} {item!r} in {text!r}: {exc}") from None
        if stage.duration_s <= 0:
            raise InputError(f"bad stage {i} {item!r} in {text!r}: duration must be > 0")
        stages.append(stage)
    return tuple(stages)


def load_trace(path: str | Path) -> np.ndarray:
    """Start offsets (seconds, sorted) from a CSV trace file.

    One call a row; the offset is the column named ``offset_s``/``offset``/``start_s``/
    ``start``/``time``/``t`` when a header row names one, else the first column. The header
    is optional; blank lines and lines starting with ``#`` are skipped. Raises
    ``InputError`` naming the file and line of the first bad row.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{p}: cannot read trace: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: trace is not UTF-8 text") from None
    col = 0
    offsets: list[float] = []
    first_row = True
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if first_row:
            first_row = False
            if not _is_number(row[0]) and not (len(row) > 1 and _is_number(row[1])):
                names = [c.strip().lower() for c in row]
                col = next(
                    (
                        names.index(n)
                        for n in ("offset_s", "offset", "start_s", "start", "time", "t")
                        if n in names
                    ),
                    0,
                )
                continue
        if col >= len(row):
            raise InputError(f"{p}:{lineno}: missing column {col + 1} (the call start offset)")
        cell = row[col].strip()
        try:
            value = float(cell)
        except ValueError:
            raise InputError(f"{p}:{lineno}: {cell!r} is not a start offset in seconds") from None
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{p}:{lineno}: start offset {cell!r} must be a finite number >= 0")
        offsets.append(value)
    if not offsets:
        raise InputError(f"{p}: trace has no call start offsets")
    if len(offsets) > MAX_ARRIVALS:
        raise InputError(f"{p}: trace has {len(offsets)} calls, more than {MAX_ARRIVALS}")
    # A trace exported from several sources may interleave; calls start in time order.
    return np.sort(np.asarray(offsets, dtype=np.float64), kind="stable")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class ArrivalSpec:
    """How calls arrive. Built by :func:`spec_from_options` or directly; validated on creation.

    ``kind`` is a registered model name; ``rate`` is calls/s (poisson, gamma, constant);
    ``burstiness`` the coefficient of variation of gamma inter-arrivals (1 = Poisson);
    ``stages`` the ramp of ``stages``; ``trace_path`` the CSV of ``trace``; ``concurrency``
    the number of calls kept in flight by ``closed``.
    """

    kind: str = "poisson"
    rate: float | None = None
    burstiness: float = 1.0
    stages: tuple[Stage, ...] = ()
    trace_path: str | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        ARRIVALS.get(self.kind).validate(self)

    @property
    def closed_loop(self) -> bool:
        """True for ``closed``: no schedule; keep ``concurrency`` calls in flight."""
        return not ARRIVALS.get(self.kind).open_loop

    def describe(self) -> str:
        """One line for logs and the run summary, e.g. ``gamma 20/s burstiness 2``."""
        return ARRIVALS.get(self.kind).describe(self)


class ArrivalModel(Protocol):
    """What a registered arrival model provides."""

    open_loop: ClassVar[bool]
    #: The schedule ends by itself (stages, trace); otherwise count or duration is needed.
    finite: ClassVar[bool]

    @staticmethod
    def validate(spec: ArrivalSpec) -> None: ...

    @staticmethod
    def describe(spec: ArrivalSpec) -> str: ...

    @staticmethod
    def generate(
        spec: ArrivalSpec, rng: np.random.Generator, count: int | None, duration_s: float | None
    ) -> np.ndarray: ...


ARRIVALS: Registry[type[ArrivalModel]] = Registry("arrival model")
register_arrival = ARRIVALS.register


def _fmt_rate(rate: float) -> str:
    return f"{rate:g}/s"


def _require_rate(spec: ArrivalSpec) -> float:
    if spec.rate is None or not math.isfinite(spec.rate) or spec.rate <= 0:
        raise InputError(f"arrival {spec.kind!r} needs a rate > 0 (e.g. --rate 20/s)")
    return spec.rate


def _no_extras(spec: ArrivalSpec, *allowed: str) -> None:
    given = {
        "rate": spec.rate is not None,
        "burstiness": spec.burstiness != 1.0,
        "stages": bool(spec.stages),
        "trace": spec.trace_path is not None,
        "concurrency": spec.concurrency is not None,
    }
    extra = [k for k, v in given.items() if v and k not in allowed]
    if extra:
        raise InputError(
            f"arrival {spec.kind!r} does not take {', '.join(extra)} "
            f"(it takes: {', '.join(allowed) or 'nothing'})"
        )


def _renewal(
    gaps_for: _GapSampler,
    mean_gap: float,
    rng: np.random.Generator,
    count: int | None,
    duration_s: float | None,
) -> np.ndarray:
    """Offsets of a renewal process whose first arrival is at t=0, bounded by count/duration.

    Without a count, gaps are drawn in chunks sized from the expected number of arrivals so
    the result depends only on the spec, the bounds and the seed.
    """
    if count is not None:
        gaps = gaps_for(rng, max(count - 1, 0))
        offsets = np.concatenate(([0.0], np.cumsum(gaps)))[:count]
    else:
        assert duration_s is not None
        expected = duration_s / mean_gap
        if expected > MAX_ARRIVALS:
            raise InputError(
                f"a {duration_s:g} s run at {1 / mean_gap:g}/s is about {expected:.3g} calls, "
                f"more than {MAX_ARRIVALS}; lower the rate or the duration, or set --count"
            )
        chunk = int(expected + 6 * math.sqrt(expected) + 64)
        parts = [np.zeros(1)]
        last = 0.0
        while last < duration_s:
            c = np.cumsum(gaps_for(rng, chunk)) + last
            parts.append(c)
            last = float(c[-1])
        offsets = np.concatenate(parts)
    if duration_s is not None:
        offsets = offsets[offsets < duration_s]
    return offsets


class _GapSampler(Protocol):
    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray: ...


class _RateOnly:
    """An open-loop model whose one parameter is ``rate`` (validated and described alike)."""

    label: ClassVar[str]
    open_loop: ClassVar[bool] = True
    finite: ClassVar[bool] = False

    @classmethod
    def validate(cls, spec: ArrivalSpec) -> None:
        _require_rate(spec)
        _no_extras(spec, "rate")

    @classmethod
    def describe(cls, spec: ArrivalSpec) -> str:
        return f"{cls.label} {_fmt_rate(_require_rate(spec))}"


@register_arrival("poisson")
class PoissonArrivals(_RateOnly):
    """Open loop, exponential inter-arrivals at ``rate`` calls/s (first call at t=0)."""

    label = "poisson"

    @staticmethod
    def generate(
        spec: ArrivalSpec, rng: np.random.Generator, count: int | None, duration_s: float | None
    ) -> np.ndarray:
        mean = 1.0 / _require_rate(spec)
        return _renewal(lambda r, n: r.exponential(mean, n), mean, rng, count, duration_s)


@register_arrival("gamma")
class GammaArrivals:
    """Open loop, gamma inter-arrivals: mean ``1/rate``, coefficient of variation ``burstiness``.

    shape = 1/cv^2, scale = cv^2/rate; cv = 1 is Poisson, cv > 1 bunches calls into bursts
    separated by lulls, cv < 1 is more regular than Poisson.
    """

    open_loop: ClassVar[bool] = True
    finite: ClassVar[bool] = False

    @staticmethod
    def validate(spec: ArrivalSpec) -> None:
        _require_rate(spec)
        if not math.isfinite(spec.burstiness) or not 0.01 <= spec.burstiness <= 100:
            raise InputError(
                f"bad burstiness {spec.burstiness!r}: expected the coefficient of variation of "
                "inter-arrival gaps, between 0.01 and 100 (1 = Poisson)"
            )
        _no_extras(spec, "rate", "burstiness")

    @staticmethod
    def describe(spec: ArrivalSpec) -> str:
        return f"gamma {_fmt_rate(_require_rate(spec))} burstiness {spec.burstiness:g}"

    @staticmethod
    def shape_scale(spec: ArrivalSpec) -> tuple[float, float]:
        """(shape, scale) of the inter-arrival gamma distribution, scale in seconds."""
        cv2 = spec.burstiness**2
        return 1.0 / cv2, cv2 / _require_rate(spec)

    @staticmethod
    def generate(
        spec: ArrivalSpec, rng: np.random.Generator, count: int | None, duration_s: float | None
    ) -> np.ndarray:
        shape, scale = GammaArrivals.shape_scale(spec)
        return _renewal(
            lambda r, n: r.gamma(shape, scale, n), shape * scale, rng, count, duration_s
        )


@register_arrival("constant")
class ConstantArrivals(_RateOnly):
    """Open loop, one call every ``1/rate`` seconds exactly, starting at t=0."""

    label = "constant"

    @staticmethod
    def generate(
        spec: ArrivalSpec, rng: np.random.Generator, count: int | None, duration_s: float | None
    ) -> np.ndarray:
        gap = 1.0 / _require_rate(spec)
        n = count if count is not None else MAX_ARRIVALS + 1
        if duration_s is not None:
            n = min(n, math.ceil(duration_s / gap) + 1)
        if n > MAX_ARRIVALS:
            raise InputError(
                f"schedule would have more than {MAX_ARRIVALS} calls; lower the rate or the "
                "duration, or set --count"
            )
        # index * gap, not a running sum, so offset k is exact however long the run.
        offsets = np.arange(n, dtype=np.float64) * gap
        return offsets[offsets < duration_s] if duration_s is not None else offsets


@register_arrival("stages")
class StagedArrivals:
    """Open loop, piecewise-constant Poisson: stage i runs at its rate for its duration.

    Each stage is an exact homogeneous Poisson process over its window (a Poisson number of
    arrivals placed uniformly), so a 0/s stage is silent and the process is memoryless across
    stage boundaries.
    """

    open_loop: ClassVar[bool] = True
    finite: ClassVar[bool] = True

    @staticmethod
    def validate(spec: ArrivalSpec) -> None:
        if not spec.stages:
            raise InputError("arrival 'stages' needs stages (e.g. --stages '1m:5/s,5m:20/s')")
        expected = sum(s.rate * s.duration_s for s in spec.stages)
        if expected > MAX_ARRIVALS:
            raise InputError(
                f"stages would start about {expected:.3g} calls, more than {MAX_ARRIVALS}"
            )
        _no_extras(spec, "stages")

    @staticmethod
    def describe(spec: ArrivalSpec) -> str:
        return "stages " + ",".join(f"{s.duration_s:g}s:{_fmt_rate(s.rate)}" for s in spec.stages)

    @staticmethod
    def boundaries(spec: ArrivalSpec) -> np.ndarray:
        """Stage start times followed by the end of the last stage (len = stages + 1)."""
        return np.concatenate(([0.0], np.cumsum([s.duration_s for s in spec.stages])))

    @staticmethod
    def generate(
        spec: ArrivalSpec, rng: np.random.Generator, count: int | None, duration_s: float | None
    ) -> np.ndarray:
        starts = StagedArrivals.boundaries(spec)
        parts = []
        for start, stage in zip(starts[:-1], spec.stages, strict=True):
            n = int(rng.poisson(stage.rate * stage.duration_s)) if stage.rate > 0 else 0
            parts.append(np.sort(start + rng.uniform(0.0, stage.duration_s, n)))
        offsets = np.concatenate(parts) if parts else np.zeros(0)
        if duration_s is not None:
            offsets = offsets[offsets < duration_s]
        return offsets[:count] if count is not None else offsets


@register_arrival("trace")
class TraceArrivals:
    """Open loop, replay of the call start offsets in a CSV file (no randomness)."""

    open_loop: ClassVar[bool] = True
    finite: ClassVar[bool] = True

    @staticmethod
    def validate(spec: ArrivalSpec) -> None:
        if not spec.trace_path:
            raise InputError("arrival 'trace' needs a CSV file of start offsets (--trace FILE)")
        _no_extras(spec, "trace")

    @staticmethod
    def describe(spec: ArrivalSpec) -> str:
        return f"trace {spec.trace_path}"

    @staticmethod
    def generate(
        spec: ArrivalSpec, rng: np.random.Generator, count: int | None, duration_s: float | None
    ) -> np.ndarray:
        assert spec.trace_path is not None
        offsets = load_trace(spec.trace_path)
        if duration_s is not None:
            offsets = offsets[offsets < duration_s]
        return offsets[:count] if count is not None else offsets


@register_arrival("closed")
class ClosedLoop:
    """Closed loop: ``concurrency`` calls in flight; each finished call starts the next.

    There is no schedule (arrivals depend on the agent's speed), so :func:`build_schedule`
    refuses it; the driver checks ``spec.closed_loop`` and keeps ``spec.concurrency`` calls
    running until ``count`` calls started or ``duration`` elapsed.
    """

    open_loop: ClassVar[bool] = False
    finite: ClassVar[bool] = False

    @staticmethod
    def validate(spec: ArrivalSpec) -> None:
        if spec.concurrency is None or spec.concurrency < 1:
            raise InputError("arrival 'closed' needs --concurrency N with N >= 1")
        _no_extras(spec, "concurrency")

    @staticmethod
    def describe(spec: ArrivalSpec) -> str:
        return f"closed loop, {spec.concurrency} concurrent"

    @staticmethod
    def generate(
        spec: ArrivalSpec, rng: np.random.Generator, count: int | None, duration_s: float | None
    ) -> np.ndarray:
        raise InputError(
            "closed-loop arrivals have no schedule: keep --concurrency calls in flight instead"
        )


# --------------------------------------------------------------------------- API


def build_schedule(
    spec: ArrivalSpec, count: int | None, duration_s: float | None, seed: int
) -> np.ndarray:
    """Start offsets (s, float64, non-decreasing) for an open-loop ``spec``.

    Stops at whichever of ``count`` calls or ``duration_s`` seconds comes first; poisson,
    gamma and constant need at least one of them, stages and trace end by themselves. The
    same (spec, bounds, seed) gives the same array in any process. Raises ``InputError`` for
    a closed-loop spec, a missing or negative bound, or a bad trace file.
    """
    model = ARRIVALS.get(spec.kind)
    if not model.open_loop:
        return model.generate(spec, np_rng(seed, "arrivals", spec.kind), count, duration_s)
    if count is not None and count < 0:
        raise InputError(f"bad --count {count}: must be >= 0")
    if duration_s is not None and (not math.isfinite(duration_s) or duration_s < 0):
        raise InputError(f"bad --duration {duration_s}: must be a finite number >= 0")
    if count is None and duration_s is None and not model.finite:
        raise InputError(
            f"arrival {spec.kind!r} runs forever: give --count N or --duration D (or both)"
        )
    if count is not None and count > MAX_ARRIVALS:
        raise InputError(f"bad --count {count}: at most {MAX_ARRIVALS} calls per run")
    rng = np_rng(seed, "arrivals", spec.kind)
    offsets = model.generate(spec, rng, count, duration_s)
    return np.ascontiguousarray(offsets, dtype=np.float64)


def split_schedule(schedule: np.ndarray, n_shards: int) -> list[np.ndarray]:
    """Deal ``schedule`` round-robin by index into ``n_shards`` arrays of absolute offsets.

    Shard k holds calls k, k+n, k+2n...; the shards together are exactly the schedule, so N
    workers sharing one start time reproduce the single-process run. Call index i of the
    run is shard ``i % n`` position ``i // n``.
    """
    if n_shards < 1:
        raise InputError(f"bad number of workers {n_shards}: must be >= 1")
    return [schedule[k::n_shards].copy() for k in range(n_shards)]


def warmup_count(schedule: np.ndarray, warmup_s: float) -> int:
    """How many leading calls of ``schedule`` start before ``warmup_s`` (excluded from metrics)."""
    return int(np.searchsorted(schedule, warmup_s, side="left"))


def spec_from_options(
    arrival: str | None = None,
    rate: str | float | None = None,
    burstiness: float | None = None,
    stages: str | None = None,
    trace: str | Path | None = None,
    concurrency: int | None = None,
) -> ArrivalSpec:
    """An :class:`ArrivalSpec` from CLI flags (strings as typed by the user).

    ``arrival`` defaults from the flags given: ``--stages`` means stages, ``--trace`` trace,
    ``--concurrency`` alone closed, otherwise poisson. Raises ``InputError`` (one line) for
    a bad value or flags that do not go together (e.g. ``--arrival constant --burstiness 2``).
    """
    if arrival is None:
        if stages is not None:
            arrival = "stages"
        elif trace is not None:
            arrival = "trace"
        elif concurrency is not None and rate is None:
            arrival = "closed"
        else:
            arrival = "poisson"
    return ArrivalSpec(
        kind=arrival,
        rate=parse_rate(rate) if rate is not None else None,
        burstiness=1.0 if burstiness is None else float(burstiness),
        stages=parse_stages(stages) if stages is not None else (),
        trace_path=str(trace) if trace is not None else None,
        concurrency=concurrency,
    )


def arrival_names() -> Sequence[str]:
    """Registered arrival model names (for ``--arrival`` choices and help)."""
    return ARRIVALS.names()
