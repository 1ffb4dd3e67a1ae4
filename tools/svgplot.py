#!/usr/bin/env python3
"""A dependency-free SVG line plot (Debian's python3 has no matplotlib here), used by the
experiments' plot scripts: line_plot(path, title, xlabel, ylabel, {name: [(x, y), ...]})."""
import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def line_plot(path, title, xlabel, ylabel, series, logx=False, logy=False, width=680, height=420):
    left, right, top, bottom = 80, 190, 34, 52
    pts = [p for s in series.values() for p in s if (not logx or p[0] > 0) and (not logy or p[1] > 0)]
    if not pts:
        raise ValueError("no points to plot")
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    fy = (lambda v: math.log10(v)) if logy else (lambda v: v)
    x0, x1 = min(fx(p[0]) for p in pts), max(fx(p[0]) for p in pts)
    y0, y1 = min(fy(p[1]) for p in pts), max(fy(p[1]) for p in pts)
    if logy:
        y0, y1 = math.floor(y0), math.ceil(y1)
    else:
        y0, y1 = min(0.0, y0), y1 * 1.05 if y1 > 0 else 1.0
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1

    def px(v):
        return left + (fx(v) - x0) / (x1 - x0) * (width - left - right)

    def py(v):
        return top + (y1 - fy(v)) / (y1 - y0) * (height - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{title}</text>']
    ticks = range(int(y0), int(y1) + 1) if logy else [y0 + (y1 - y0) * k / 5 for k in range(6)]
    for t in ticks:
        v = 10 ** t if logy else t
        y = py(v)
        label = f"1e{t}" if logy else f"{v:.3g}"
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    xs = sorted({p[0] for p in pts})
    for v in xs:
        out.append(f'<text x="{px(v):.1f}" y="{height - bottom + 16}" text-anchor="middle">{v:g}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">{xlabel}</text>')
    out.append(f'<text x="16" y="{(top + height - bottom) / 2}" transform="rotate(-90 16 {(top + height - bottom) / 2})" '
               f'text-anchor="middle">{ylabel}</text>')
    ly = top + 8
    for i, (name, s) in enumerate(series.items()):
        c = COLORS[i % len(COLORS)]
        good = [p for p in s if (not logx or p[0] > 0) and (not logy or p[1] > 0)]
        d = " ".join(f"{'M' if k == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for k, (x, y) in enumerate(good))
        out.append(f'<path d="{d}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in good:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        out.append(f'<line x1="{width - right + 10}" y1="{ly}" x2="{width - right + 30}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{width - right + 35}" y="{ly + 4}">{name}</text>')
        ly += 18
    out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
