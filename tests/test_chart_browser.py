"""The webhook page's chart as a browser draws it: at a desktop's width and a
phone's, for each window, no text of the chart is drawn over another, nor
outside the drawing, and the points sit on their bars."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.stats import StatsBatch
from tests.browser import shot, sign_in, skip_without_chromium
from tests.factories import WebhookFactory

skip_without_chromium()

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# test makes between browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Every text element of the chart on screen, with its box in CSS pixels.
TEXT_BOXES = """svg => [...svg.querySelectorAll('text')].map(t => {
  const b = t.getBoundingClientRect();
  return {text: t.textContent, left: b.left, right: b.right, top: b.top, bottom: b.bottom};
})"""
SVG_BOX = """svg => { const b = svg.getBoundingClientRect();
  return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; }"""
# The x of each success point and the centre of each bar, on screen.
POINTS_AND_BARS = """svg => {
  const m = svg.getScreenCTM();
  const at = (x, y) => new DOMPoint(x, y).matrixTransform(m).x;
  const d = svg.querySelector('.line-success').getAttribute('d');
  const points = [...d.matchAll(/[ML](-?[\\d.]+),(-?[\\d.]+)/g)].map(p => at(+p[1], +p[2]));
  const bars = [...svg.querySelectorAll('.bar-volume')].map(r => {
    const b = r.getBoundingClientRect(); return b.left + b.width / 2; });
  return {points, bars};
}"""


def overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    pairs = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["right"] <= b["left"]
                or b["right"] <= a["left"]
                or a["bottom"] <= b["top"]
                or b["bottom"] <= a["top"]
            )
            if not apart:
                pairs.append((a["text"], b["text"]))
    return pairs


def a_month_of_traffic(webhook) -> None:
    """An attempt every 25 minutes for 30 days, some slow, some failing."""
    batch = StatsBatch()
    now = timezone.now()
    for minute in range(0, 30 * 24 * 60, 25):
        batch.attempt(
            webhook.pk,
            now - timedelta(minutes=minute),
            succeeded=minute % 4 != 0,
            latency_ms=1500 if minute % 7 == 0 else 40,
            ended="succeeded",
        )
    batch.write()


@pytest.mark.parametrize("width", [1400, 390])
def test_the_charts_labels_never_overlap(page, live_server, admin, width):
    webhook = WebhookFactory(organization=admin.organization, name="Orders")
    a_month_of_traffic(webhook)
    sign_in(page, live_server, admin.user)
    page.set_viewport_size({"width": width, "height": 900})
    for window in ("1h", "24h", "7d", "30d"):
        page.goto(f"{live_server.url}/webhooks/{webhook.public_id}/?chart={window}")
        visible = page.locator("svg.chart:visible, svg.chart-compact:visible")
        assert visible.count() == 1, window  # one drawing, the one that fits
        svg = visible.first
        boxes = svg.evaluate(TEXT_BOXES)
        frame = svg.evaluate(SVG_BOX)
        assert len(boxes) >= 7, boxes  # titles, scales, and some times
        assert overlapping(boxes) == [], (window, width)
        for box in boxes:
            assert frame["left"] - 0.5 <= box["left"] and box["right"] <= frame["right"] + 0.5, box
        small = min(box["bottom"] - box["top"] for box in boxes)
        assert small >= 9, f"{window} at {width} px: text {small:.1f} px high"

        placed = svg.evaluate(POINTS_AND_BARS)
        assert len(placed["points"]) == len(placed["bars"]) > 0
        for x, centre in zip(placed["points"], placed["bars"], strict=True):
            assert abs(x - centre) < 1, (window, width)
        shot(page, f"chart-{window}-{width}")
