"""Inline SVG charts, generated in Python: no JavaScript, no fonts, no network.

Pure functions from numbers to an SVG string (line/step charts and grouped bar charts with
axes, ticks and a legend). Every label is escaped, so category names from data are safe.
An empty chart says "no data" rather than drawing nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2f6fdf", "#e0822b", "#2a9d62", "#c23b4e", "#7a52c7", "#6b7280")

Fmt = Callable[[float], str]


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks: list[float] = []
    v = start
    while v <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(v, 12))
        v += step
    return ticks


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    step: bool = False          # draw as a step function (CDFs)
    markers: bool = False
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class _Frame:
    width: int
    height: int
    left: int = 58
    right: int = 14
    top: int = 26
    bottom: int = 40

    @property
    def pw(self) -> int:
        return self.width - self.left - self.right

    @property
    def ph(self) -> int:
        return self.height - self.top - self.bottom


def _open(f: _Frame, kind: str, title: str) -> list[str]:
    return [
        f'<svg class="chart" data-chart="{_e(kind)}" viewBox="0 0 {f.width} {f.height}" '
        f'width="{f.width}" height="{f.height}" role="img" aria-label="{_e(title)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{_e(title)}</title>",
    ]


def _empty(f: _Frame, kind: str, title: str) -> str:
    parts = _open(f, kind, title)
    parts.append(f'<text class="nodata" x="{f.width / 2}" y="{f.height / 2}" '
                 'text-anchor="middle">no data</text></svg>')
    return "".join(parts)


def _legend(f: _Frame, names: Sequence[tuple[str, str]]) -> str:
    if len(names) < 2:
        return ""
    out, x = [], f.left
    for name, color in names:
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{_e(color)}"/>'
                   f'<text class="legend" x="{x + 14}" y="17">{_e(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(out)


def _axes(f: _Frame, xt: list[tuple[float, str]], yt: list[tuple[float, str]],
          x_label: str, y_label: str) -> str:
    out = []
    for y, label in yt:
        out.append(f'<line class="grid" x1="{f.left}" x2="{f.left + f.pw}" y1="{_num(y)}" '
                   f'y2="{_num(y)}"/><text class="tick" x="{f.left - 6}" y="{_num(y + 4)}" '
                   f'text-anchor="end">{_e(label)}</text>')
    for x, label in xt:
        out.append(f'<line class="tickmark" x1="{_num(x)}" x2="{_num(x)}" '
                   f'y1="{f.top + f.ph}" y2="{f.top + f.ph + 4}"/>'
                   f'<text class="tick" x="{_num(x)}" y="{f.top + f.ph + 16}" '
                   f'text-anchor="middle">{_e(label)}</text>')
    out.append(f'<line class="axis" x1="{f.left}" x2="{f.left + f.pw}" y1="{f.top + f.ph}" '
               f'y2="{f.top + f.ph}"/><line class="axis" x1="{f.left}" x2="{f.left}" '
               f'y1="{f.top}" y2="{f.top + f.ph}"/>')
    out.append(f'<text class="axlabel" x="{f.left + f.pw / 2}" y="{f.height - 4}" '
               f'text-anchor="middle">{_e(x_label)}</text>')
    out.append(f'<text class="axlabel" transform="translate(13 {f.top + f.ph / 2}) rotate(-90)"'
               f' text-anchor="middle">{_e(y_label)}</text>')
    return "".join(out)


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str,
               x_fmt: Fmt = _num, y_fmt: Fmt = _num, kind: str = "line",
               y_min: float | None = None, y_max: float | None = None,
               width: int = 560, height: int = 250) -> str:
    """A line (or step) chart of one or more series sharing axes."""
    f = _Frame(width, height)
    pts = [p for s in series for p in s.points]
    if not pts:
        return _empty(f, kind, title)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    xt = nice_ticks(min(xs), max(xs))
    yt = nice_ticks(min(ys) if y_min is None else y_min, max(ys) if y_max is None else y_max)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def sx(x: float) -> float:
        return f.left + (x - x0) / ((x1 - x0) or 1.0) * f.pw

    def sy(y: float) -> float:
        return f.top + f.ph - (y - y0) / ((y1 - y0) or 1.0) * f.ph

    parts = _open(f, kind, title)
    parts.append(_axes(f, [(sx(x), x_fmt(x)) for x in xt], [(sy(y), y_fmt(y)) for y in yt],
                       x_label, y_label))
    for s in series:
        if not s.points:
            continue
        coords: list[tuple[float, float]] = []
        prev: tuple[float, float] | None = None
        for x, y in s.points:
            if s.step and prev is not None:
                coords.append((sx(x), sy(prev[1])))
            coords.append((sx(x), sy(y)))
            prev = (x, y)
        if len(coords) == 1:  # a single point still draws a visible tick
            coords.append((coords[0][0] + 2, coords[0][1]))
        d = "M" + " L".join(f"{_num(x)} {_num(y)}" for x, y in coords)
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(f'<path class="series" d="{d}" fill="none" stroke="{_e(s.color)}" '
                     f'stroke-width="2"{dash}><title>{_e(s.name)}</title></path>')
        if s.markers:
            for x, y in s.points:
                parts.append(f'<circle cx="{_num(sx(x))}" cy="{_num(sy(y))}" r="2.5" '
                             f'fill="{_e(s.color)}"><title>{_e(s.name)}: {_e(x_fmt(x))}, '
                             f'{_e(y_fmt(y))}</title></circle>')
    parts.append(_legend(f, [(s.name, s.color) for s in series]))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(categories: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
              *, title: str, y_label: str, x_label: str = "", y_fmt: Fmt = _num,
              notes: Sequence[str] | None = None, y_max: float | None = None,
              kind: str = "bar", width: int = 560, height: int = 250,
              colors: Sequence[str] = PALETTE) -> str:
    """Grouped vertical bars: one group per category, one bar per series (None: no bar).

    ``notes`` (one per category) are printed under the category label, e.g. ``n=12``.
    """
    f = _Frame(width, height, bottom=52 if notes else 40)
    vals = [v for _, vs in series for v in vs if v is not None]
    if not categories or not vals:
        return _empty(f, kind, title)
    yt = nice_ticks(0.0, max(max(vals), 1e-12) if y_max is None else y_max)
    y1 = yt[-1]

    def sy(y: float) -> float:
        return f.top + f.ph - y / (y1 or 1.0) * f.ph

    group = f.pw / len(categories)
    bw = max(2.0, min(40.0, group * 0.8 / max(len(series), 1)))
    parts = _open(f, kind, title)
    xt = [(f.left + group * (i + 0.5), c) for i, c in enumerate(categories)]
    parts.append(_axes(f, [], [(sy(y), y_fmt(y)) for y in yt], x_label, y_label))
    for i, (x, c) in enumerate(xt):
        label = c if len(c) <= 18 else c[:17] + "…"
        parts.append(f'<text class="tick" x="{_num(x)}" y="{f.top + f.ph + 14}" '
                     f'text-anchor="middle">{_e(label)}</text>')
        if notes:
            parts.append(f'<text class="tick dim" x="{_num(x)}" y="{f.top + f.ph + 27}" '
                         f'text-anchor="middle">{_e(notes[i])}</text>')
    for si, (name, vs) in enumerate(series):
        color = colors[si % len(colors)]
        for i, v in enumerate(vs):
            if v is None:
                continue
            x = f.left + group * i + (group - bw * len(series)) / 2 + bw * si
            h = max(1.0, f.top + f.ph - sy(v))
            parts.append(f'<rect class="bar" x="{_num(x)}" y="{_num(f.top + f.ph - h)}" '
                         f'width="{_num(bw - 1)}" height="{_num(h)}" fill="{_e(color)}">'
                         f"<title>{_e(name)} · {_e(categories[i])}: {_e(y_fmt(v))}</title>"
                         "</rect>")
    parts.append(_legend(f, [(n, colors[i % len(colors)]) for i, (n, _) in enumerate(series)]))
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[float], *, title: str, x_label: str, x_fmt: Fmt = _num,
              bins: int = 20, kind: str = "histogram", width: int = 560,
              height: int = 250) -> str:
    """A histogram of ``values`` (count per bin) drawn as adjacent bars."""
    f = _Frame(width, height)
    if not values:
        return _empty(f, kind, title)
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    n = max(1, min(bins, len(values)))
    w = (hi - lo) / n
    counts = [0] * n
    for v in values:
        counts[min(int((v - lo) / w), n - 1)] += 1
    yt = nice_ticks(0, max(counts))
    y1 = yt[-1]
    parts = _open(f, kind, title)
    xt = nice_ticks(lo, hi)
    xt = [t for t in xt if lo <= t <= hi] or [lo, hi]

    def sx(x: float) -> float:
        return f.left + (x - lo) / (hi - lo) * f.pw

    def sy(y: float) -> float:
        return f.top + f.ph - y / (y1 or 1.0) * f.ph

    parts.append(_axes(f, [(sx(x), x_fmt(x)) for x in xt], [(sy(y), f"{y:g}") for y in yt],
                       x_label, "calls"))
    bw = f.pw / n
    for i, c in enumerate(counts):
        if c == 0:
            continue
        h = f.top + f.ph - sy(c)
        parts.append(f'<rect class="bar" x="{_num(f.left + i * bw)}" y="{_num(sy(c))}" '
                     f'width="{_num(max(bw - 1, 1))}" height="{_num(h)}" fill="{PALETTE[0]}">'
                     f"<title>{_e(x_fmt(lo + i * w))}–{_e(x_fmt(lo + (i + 1) * w))}: {c}"
                     "</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def cdf_points(sorted_values: Sequence[float], max_points: int = 400) -> list[tuple[float, float]]:
    """(value, cumulative share) pairs of an ascending sample, thinned to ``max_points``."""
    n = len(sorted_values)
    if n == 0:
        return []
    step = max(1, n // max_points)
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [(float(sorted_values[i]), (i + 1) / n) for i in idx]
