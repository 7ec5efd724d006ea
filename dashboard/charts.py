"""Charts as server-rendered SVG geometry: no chart library, no JavaScript."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from monitoring.stats import Point
from monitoring.units import latency_text, percent_text


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


def _area(values: list[float | None], xs: list[float], y_of, base: float) -> str:
    """The shape under a path: one closed shape per run of known values, so
    that, like the line, it never bridges buckets without attempts."""
    runs: list[list[tuple[float, float]]] = []
    for x, value in zip(xs, values, strict=True):
        if value is None:
            if runs and runs[-1]:
                runs.append([])
            continue
        if not runs:
            runs.append([])
        runs[-1].append((x, y_of(value)))
    shapes = []
    for run in runs:
        if len(run) > 1:  # a lone point is a dot (_dots)
            edge = " ".join(f"L{x:.1f},{y:.1f}" for x, y in run)
            shapes.append(f"M{run[0][0]:.1f},{base} {edge} L{run[-1][0]:.1f},{base} Z")
    return " ".join(shapes)


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


# The webhook page's chart is drawn twice, at two widths, and the page shows
# the one that fits (static/css/herald.css): its labels keep a legible size
# instead of shrinking with a 960-unit drawing onto a phone.
WIDE, COMPACT = 960, 360
HEADER = 16  # a band above each panel for its title and scale, clear of the lines
PLOT = 96  # a panel's plotting height
PANEL_GAP = 14
AXIS = 20  # ticks and time labels under the latency panel
# An axis label's width, generously: 11 px text in the widest likely font.
CHAR_WIDTH = 7.0
LABEL_GAP = 16
MAX_LABELS = 8
# Label spacings to choose from: round times, the closest that leaves room.
LABEL_INTERVALS = (
    [timedelta(minutes=m) for m in (2, 4, 6, 10, 12, 20, 30)]
    + [timedelta(hours=h) for h in (1, 2, 3, 4, 6, 12)]
    + [timedelta(days=d) for d in (1, 2, 3, 5, 7, 10, 15, 30)]
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class AxisLabel:
    """A time under the chart: at its tick, the start of the bucket it names."""

    x: float
    text: str
    anchor: str  # SVG text-anchor: middle, or start / end at the chart's edges

    @property
    def extent(self) -> tuple[float, float]:
        width = len(self.text) * CHAR_WIDTH
        left = {"start": self.x, "middle": self.x - width / 2, "end": self.x - width}[self.anchor]
        return left, left + width


@dataclass
class Chart:
    """One drawing of a series: success rate over volume bars on top, average
    and p95 latency below. Each bucket spans [i·slot, (i+1)·slot): its bar
    fills that, its points sit at its centre, its time at its left edge."""

    width: int
    success_top: float
    success_bottom: float
    latency_top: float
    latency_bottom: float
    success_line: str
    success_area: str
    success_dots: list[tuple[float, float]]
    latency_line: str
    latency_dots: list[tuple[float, float]]
    p95_line: str
    latency_scale: str  # the latency panel's top, in the units of the tiles
    volume_bars: list[Bar]
    x_labels: list[AxisLabel]

    @property
    def volume_svg(self) -> SafeString:
        """The volume bars as SVG: written here, not by the template engine,
        which spent more on a 30-day chart's bars (their numbers localised
        one by one) than on the rest of the page's chart."""
        return mark_safe(  # noqa: S308 (numbers, and titles escaped)
            "".join(
                f'<rect x="{bar.x}" y="{bar.y}" width="{bar.width}" height="{bar.height}" '
                f'class="bar-volume"><title>{escape(bar.title)}</title></rect>'
                for bar in self.volume_bars
            )
        )

    @property
    def height(self) -> float:
        return self.latency_bottom + AXIS

    @property
    def success_title_y(self) -> float:
        return self.success_top - HEADER + 11

    @property
    def latency_title_y(self) -> float:
        return self.latency_top - HEADER + 11

    @property
    def tick_bottom(self) -> float:
        return self.latency_bottom + 4

    @property
    def label_y(self) -> float:
        return self.latency_bottom + 16


@dataclass
class WebhookChart:
    """The webhook page's chart, wide and compact."""

    wide: Chart
    compact: Chart
    empty: bool


def webhook_chart(points: list[Point], label_format: str = "%H:%M") -> WebhookChart:
    """The chart of a webhook's series (equal buckets, oldest first), with its
    times written in `label_format`."""
    return WebhookChart(
        wide=draw(points, WIDE, label_format),
        compact=draw(points, COMPACT, label_format),
        empty=not any(p.attempts for p in points),
    )


def _step(points: list[Point]) -> timedelta | None:
    return points[1].at - points[0].at if len(points) > 1 else None


def bucket_title(point: Point, step: timedelta | None, label_format: str) -> str:
    """What a bar's tooltip says of its bucket, latencies in the tiles' units."""
    span = f"{point.at:{label_format}}"
    if step is not None and "%H" in label_format:
        span += f"–{point.at + step:{label_format}}"
    parts = [span, f"{point.attempts} attempt{'s' if point.attempts != 1 else ''}"]
    if point.success_rate is not None:
        parts.append(f"{percent_text(point.success_rate)} ok")
    if point.avg_latency_ms is not None:
        parts.append(f"avg {latency_text(point.avg_latency_ms)}")
        parts.append(f"p95 {latency_text(point.p95_latency_ms)}")
    return " · ".join(parts)


def draw(points: list[Point], width: int, label_format: str = "%H:%M") -> Chart:
    """One drawing of the series, `width` units wide (see Chart)."""
    n = max(1, len(points))
    slot = width / n
    xs = [round((i + 0.5) * slot, 1) for i in range(n)]
    success_top = HEADER
    success_bottom = success_top + PLOT
    latency_top = success_bottom + PANEL_GAP + HEADER
    latency_bottom = latency_top + PLOT

    rates = [p.success_rate for p in points]
    success_y = lambda rate: success_bottom - 2 - rate * (PLOT - 4)  # noqa: E731
    step = _step(points)
    most = max((p.attempts for p in points), default=0) or 1
    volume_height = PLOT * 0.35
    volume = [
        Bar(
            x=round(i * slot + 1, 1),
            y=round(success_bottom - volume_height * p.attempts / most, 1),
            width=round(max(1.0, slot - 2), 1),
            height=round(volume_height * p.attempts / most, 1),
            tone="volume",
            title=bucket_title(p, step, label_format),
        )
        for i, p in enumerate(points)
        if p.attempts
    ]

    p95s = [p.p95_latency_ms for p in points]
    avgs = [p.avg_latency_ms for p in points]
    latency_max = nice_ceiling(max([v for v in p95s + avgs if v is not None], default=0))
    latency_y = lambda ms: latency_bottom - 2 - (ms / latency_max) * (PLOT - 4)  # noqa: E731
    return Chart(
        width=width,
        success_top=success_top,
        success_bottom=success_bottom,
        latency_top=latency_top,
        latency_bottom=latency_bottom,
        success_line=_path(rates, xs[: len(rates)], success_y),
        success_area=_area(rates, xs[: len(rates)], success_y, success_bottom),
        success_dots=_dots(rates, xs, success_y),
        latency_line=_path(avgs, xs[: len(avgs)], latency_y),
        latency_dots=_dots(avgs, xs, latency_y),
        p95_line=_path(p95s, xs[: len(p95s)], latency_y),
        latency_scale=latency_text(latency_max),
        volume_bars=volume,
        x_labels=axis_labels(points, width, label_format),
    )


def axis_labels(points: list[Point], width: int, label_format: str) -> list[AxisLabel]:
    """Times under the chart, at the left edge of the buckets they name: every
    bucket that starts on a round interval, the shortest interval that leaves
    each label room; never two labels over each other."""
    if not points:
        return []
    slot = width / len(points)
    step = _step(points) or timedelta(days=1)
    # A date alone cannot name two buckets of one day.
    shortest = step if "%H" in label_format else max(step, timedelta(days=1))
    text_width = len(points[0].at.strftime(label_format)) * CHAR_WIDTH
    # Room for a label pushed against an edge (it then reaches a whole width
    # from its tick, not half), and no more than MAX_LABELS in all.
    needed = max(1.5 * text_width + LABEL_GAP, width / MAX_LABELS)
    interval = next(
        (
            i
            for i in LABEL_INTERVALS
            if i >= shortest and i % step == timedelta(0) and (i / step) * slot >= needed
        ),
        step * len(points),
    )
    every = round(interval / step)
    aligned = [i for i, p in enumerate(points[:every]) if (p.at - EPOCH) % interval == timedelta(0)]
    first = aligned[0] if aligned else 0
    labels: list[AxisLabel] = []
    for i in range(first, len(points), every):
        text = points[i].at.strftime(label_format)
        x = round(i * slot, 1)
        half = len(text) * CHAR_WIDTH / 2
        anchor = "start" if x - half < 0 else "end" if x + half > width else "middle"
        label = AxisLabel(x, text, anchor)
        if labels and label.extent[0] < labels[-1].extent[1] + LABEL_GAP / 2:
            continue  # pushed against its neighbour by the chart's edge
        labels.append(label)
    return labels
