"""The Pareto plot: quality (e.g. test pop100 NDCG@10) against cost (FLOPs), the front in red.

Cost goes on a log axis when it spans more than a factor of 20 (pruned models are often 10-100x cheaper
than the supernet); ticks are labelled at the ends and the middle of each axis.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

from dnsrec.results.png import Canvas, text_width

WIDTH, HEIGHT = 720, 480
LEFT, RIGHT, TOP, BOTTOM = 90, 30, 50, 60
GREY, RED, BLACK, LIGHT = (140, 140, 140), (214, 39, 40), (0, 0, 0), (225, 225, 225)


def _label(v: float) -> str:
    return f"{v:.3g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _span(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def pareto_png(
    path: Path, points: Sequence[tuple[float, float, bool]], quality_name: str, cost_name: str
) -> tuple[int, int]:
    """Write a PNG of `(cost, quality, on_front)` points; returns its (width, height)."""
    canvas = Canvas(WIDTH, HEIGHT)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP  # plot area corners (y grows downwards)
    costs = [c for c, _, _ in points]
    log = bool(costs) and min(costs) > 0 and max(costs) / min(costs) > 20
    tx = (lambda c: math.log10(c)) if log else (lambda c: c)
    xlo, xhi = _span(*(tx(min(costs)), tx(max(costs)))) if costs else (0.0, 1.0)
    ylo, yhi = _span(min(q for _, q, _ in points), max(q for _, q, _ in points)) if points else (0.0, 1.0)

    def px(c: float) -> int:
        return round(x0 + (tx(c) - xlo) / (xhi - xlo) * (x1 - x0))

    def py(q: float) -> int:
        return round(y0 - (q - ylo) / (yhi - ylo) * (y0 - y1))

    for f in (0.0, 0.5, 1.0):  # grid, ticks and labels
        gx, gy = round(x0 + f * (x1 - x0)), round(y0 - f * (y0 - y1))
        canvas.line(gx, y1, gx, y0, LIGHT)
        canvas.line(x0, gy, x1, gy, LIGHT)
        xv = xlo + f * (xhi - xlo)
        xs = _label(10**xv if log else xv)
        canvas.text(gx - text_width(xs) // 2, y0 + 8, xs)
        ys = _label(ylo + f * (yhi - ylo))
        canvas.text(x0 - 8 - text_width(ys), gy - 5, ys)
    canvas.line(x0, y0, x1, y0, BLACK)
    canvas.line(x0, y0, x0, y1, BLACK)
    xname = f"{cost_name} (log scale)" if log else cost_name
    canvas.text((x0 + x1 - text_width(xname)) // 2, HEIGHT - 24, xname)
    canvas.text(x0, y1 - 30, f"{quality_name} vs {cost_name}: Pareto front in red")

    front = sorted((c, q) for c, q, on in points if on)
    for (ca, qa), (cb, qb) in itertools.pairwise(front):
        canvas.line(px(ca), py(qa), px(cb), py(qb), RED)
    for c, q, on in sorted(points, key=lambda p: p[2]):  # the front drawn last, on top
        r, color = (4, RED) if on else (3, GREY)
        canvas.rect(px(c) - r, py(q) - r, px(c) + r, py(q) + r, color)
    if not points:
        canvas.text((x0 + x1) // 2 - 40, (y0 + y1) // 2, "no runs")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.png())
    return WIDTH, HEIGHT
