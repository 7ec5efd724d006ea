"""How figures read wherever Herald shows them (pages, charts, e-mails, chat
messages): latencies in milliseconds below a second and in seconds from
there, rates in percent, counts as whole numbers. One place, so a tile, a
chart's axis and an alert never show the same figure two ways."""

NOTHING = "—"


def latency_text(milliseconds: float | None) -> str:
    """`120 ms`, `2.5 s`; a dash for no latency."""
    if milliseconds is None:
        return NOTHING
    if round(milliseconds) >= 1000:
        return f"{milliseconds / 1000:.1f} s"
    return f"{milliseconds:.0f} ms"


def percent_text(fraction: float | None) -> str:
    """`95%`, `28.6%` from a fraction 0–1; a dash for none."""
    if fraction is None:
        return NOTHING
    return f"{fraction * 100:.1f}".removesuffix(".0") + "%"


def count_text(count: float | None) -> str:
    """`5`, `1,000,000`: a count stored as a float (a threshold) reads whole."""
    if count is None:
        return NOTHING
    return f"{round(count):,}"
