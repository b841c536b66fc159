"""Bar geometry for the inline SVG chart of daily fleet cost (drawn by the template)."""

from decimal import Decimal

from console.formatting import usd

CHART_W, CHART_H, CHART_LEFT, CHART_BOTTOM, CHART_TOP = 1000, 160, 56, 22, 10


def cost_chart(days: list) -> dict:
    """One bar per (day, cost) in `days`, with axis labels."""
    peak = max((cost for _, cost in days), default=Decimal(0))
    scale_max = peak if peak > 0 else Decimal(1)
    plot_h = CHART_H - CHART_BOTTOM - CHART_TOP
    slot = (CHART_W - CHART_LEFT) / max(len(days), 1)
    bars = []
    for i, (day, cost) in enumerate(days):
        h = float(cost / scale_max) * plot_h
        bars.append(
            {
                "x": round(CHART_LEFT + i * slot + 1, 1),
                "y": round(CHART_TOP + plot_h - h, 1),
                "w": round(slot - 2, 1),
                "h": round(h, 1),
                "title": f"{day:%a %d %b}: {usd(cost)}",
                "label": f"{day.day} {day:%b}" if i % 5 == 0 or i == len(days) - 1 else "",
                "label_x": round(CHART_LEFT + (i + 0.5) * slot, 1),
            }
        )
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": CHART_LEFT,
        "top": CHART_TOP,
        "baseline": CHART_TOP + plot_h,
        "mid": CHART_TOP + plot_h / 2,
        "label_y": CHART_H - 6,
        "max_label": usd(peak) if peak > 0 else "$0",
        "mid_label": usd(peak / 2) if peak > 0 else "",
        "total": usd(sum((cost for _, cost in days), Decimal(0))),
        "bars": bars,
        "days": len(days),
    }
