"""Charts as server-rendered SVG geometry: no chart library, no JavaScript."""

from dataclasses import dataclass

from monitoring.stats import Point


def tone(success_rate: float | None) -> str:
    if success_rate is None:
        return "none"
    if success_rate >= 0.95:
        return "good"
    if success_rate >= 0.8:
        return "warn"
    return "bad"


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    tone: str
    title: str


def sparkline(points: list[Point], width: int = 120, height: int = 28) -> list[Bar]:
    """One bar per bucket: height is volume, colour is success rate."""
    if not points:
        return []
    most = max(p.attempts for p in points) or 1
    slot = width / len(points)
    bars = []
    for i, point in enumerate(points):
        if not point.attempts:
            continue
        h = max(2.0, (height - 2) * point.attempts / most)
        rate = point.success_rate
        bars.append(
            Bar(
                x=round(i * slot + 0.5, 2),
                y=round(height - h, 2),
                width=round(max(1.0, slot - 1), 2),
                height=round(h, 2),
                tone=tone(rate),
                title=f"{point.at:%H:%M} · {point.attempts} attempts · {rate:.0%} ok",
            )
        )
    return bars


def _path(values: list[float | None], xs: list[float], y_of) -> str:
    """An SVG path through the known values, broken where values are missing."""
    parts = []
    pen_down = False
    for x, value in zip(xs, values, strict=True):
        if value is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f},{y_of(value):.1f}")
        pen_down = True
    return " ".join(parts)


def nice_ceiling(value: float) -> float:
    """The next round number at or above `value`, for an axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def _dots(values: list[float | None], xs: list[float], y_of) -> list[tuple[float, float]]:
    """Points with no known neighbour, which a path alone would not show."""
    dots = []
    for i, value in enumerate(values):
        if value is None:
            continue
        before = values[i - 1] if i > 0 else None
        after = values[i + 1] if i + 1 < len(values) else None
        if before is None and after is None:
            dots.append((xs[i], round(y_of(value), 1)))
    return dots


@dataclass
class Chart:
    width: int
    panel_height: int
    gap: int
    success_line: str
    success_area: str
    success_dots: list[tuple[float, float]]
    latency_line: str
    latency_dots: list[tuple[float, float]]
    p95_line: str
    latency_max: float
    volume_bars: list[Bar]
    x_labels: list[tuple[float, str]]
    empty: bool

    @property
    def height(self) -> int:
        return self.panel_height * 2 + self.gap + 18

    @property
    def latency_top(self) -> int:
        return self.panel_height + self.gap


def webhook_chart(
    points: list[Point],
    width: int = 960,
    panel_height: int = 110,
    gap: int = 30,
    label_format: str = "%H:%M",
) -> Chart:
    """Success rate over volume bars on top, average and p95 latency below."""
    n = max(1, len(points))
    slot = width / n
    xs = [round((i + 0.5) * slot, 1) for i in range(n)]
    rates = [p.success_rate for p in points]
    success_y = lambda rate: panel_height - rate * (panel_height - 4) - 2  # noqa: E731
    success_line = _path(rates, xs, success_y)
    area = ""
    known = [(x, r) for x, r in zip(xs, rates, strict=True) if r is not None]
    if known:
        area = (
            f"M{known[0][0]:.1f},{panel_height} "
            + " ".join(f"L{x:.1f},{success_y(r):.1f}" for x, r in known)
            + f" L{known[-1][0]:.1f},{panel_height} Z"
        )
    most = max((p.attempts for p in points), default=0) or 1
    volume = [
        Bar(
            x=round(i * slot + 1, 1),
            y=round(panel_height - (panel_height * 0.35) * p.attempts / most, 1),
            width=round(max(1.0, slot - 2), 1),
            height=round((panel_height * 0.35) * p.attempts / most, 1),
            tone="volume",
            title=f"{p.at:{label_format}} · {p.attempts} attempts",
        )
        for i, p in enumerate(points)
        if p.attempts
    ]
    p95s = [p.p95_latency_ms for p in points]
    avgs = [p.avg_latency_ms for p in points]
    latency_max = nice_ceiling(max([v for v in p95s + avgs if v is not None], default=0))
    top = panel_height + gap
    latency_y = lambda ms: top + panel_height - (ms / latency_max) * (panel_height - 4) - 2  # noqa: E731
    step = max(1, n // 6)
    labels = [(xs[i], points[i].at.strftime(label_format)) for i in range(0, n, step)]
    return Chart(
        width=width,
        panel_height=panel_height,
        gap=gap,
        success_line=success_line,
        success_area=area,
        success_dots=_dots(rates, xs, success_y),
        latency_line=_path(avgs, xs, latency_y),
        latency_dots=_dots(avgs, xs, latency_y),
        p95_line=_path(p95s, xs, latency_y),
        latency_max=latency_max,
        volume_bars=volume,
        x_labels=labels,
        empty=not any(p.attempts for p in points),
    )
