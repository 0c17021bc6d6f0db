"""Server-rendered bar charts: geometry computed here, drawn as SVG by `overview/hours_chart.html`.

No script and no CDN. Each bar has a `<title>` with its hour and counts and
links to the history behind it; failures are hatched as well as coloured, so
the chart reads without colour.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from urllib.parse import urlencode

WIDTH, HEIGHT, TOP, BOTTOM = 480, 120, 8, 20
SLOT = WIDTH / 24


@dataclass
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    bad_y: float
    bad_height: float
    title: str
    href: str
    tick: str


def hour_bars(hours, *, history_url: str = "", good: str = "received", bad: str = "failed") -> list[Bar]:
    """One bar per hour: `good` counts solid at the bottom, `bad` counts hatched on top."""
    peak = max((hour.succeeded + hour.failed for hour in hours), default=0) or 1
    scale = (HEIGHT - TOP - BOTTOM) / peak
    bars = []
    for index, hour in enumerate(hours):
        ok_height, bad_height = hour.succeeded * scale, hour.failed * scale
        base = HEIGHT - BOTTOM
        start, end = hour.hour, hour.hour + datetime.timedelta(hours=1)
        query = urlencode({"since": f"{start:%Y-%m-%dT%H:%M}", "until": f"{end:%Y-%m-%dT%H:%M}"})
        bars.append(
            Bar(
                x=round(index * SLOT + 1, 1),
                width=round(SLOT - 2, 1),
                ok_y=round(base - ok_height, 1),
                ok_height=round(ok_height, 1),
                bad_y=round(base - ok_height - bad_height, 1),
                bad_height=round(bad_height, 1),
                title=f"{start:%Y-%m-%d %H:00}–{end:%H:00} UTC: {hour.succeeded} {good}, {hour.failed} {bad}",
                href=f"{history_url}?{query}" if history_url else "",
                tick=f"{start:%H}h" if index % 6 == 0 else "",
            )
        )
    return bars
