#!/usr/bin/env python3
"""Draws crossover.svg from crossover.json and bench_*.json (plain SVG, no plotting library):
rows/s against tree depth for the three strategies (random ensembles, 100 trees, batch 10k,
1 thread, log scale), with XGBoost's inplace_predict and Loom's auto choice on the trained
100-tree XGBoost models of the same depths.

    /usr/bin/python3 experiments/hummingbird/plot.py experiments/hummingbird
"""
import json
import math
import os
import sys

W, H, L, R, T, B = 640, 400, 70, 170, 30, 50


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    cross = json.load(open(os.path.join(d, "crossover.json")))
    sel = [r for r in cross if r["threads"] == 1 and r["trees"] == 100 and r["batch"] == 10000]
    sel.sort(key=lambda r: r["depth"])
    series = {k: [(r["depth"], r[k + "_rows_per_s"]) for r in sel if r[k + "_rows_per_s"] > 0]
              for k in ("gemm", "tt", "ptt")}
    points = {"xgboost inplace_predict": [], "loom auto": []}
    for depth in (3, 8, 12):
        p = os.path.join(d, f"bench_xgb_binary_d{depth}_t100.json")
        if not os.path.exists(p):
            continue
        for r in json.load(open(p)):
            if r["threads"] == 1 and r["case"].endswith("batch 10000") and r["strategy"].startswith("auto"):
                points["xgboost inplace_predict"].append((depth, r["peer_rows_per_s"]))
                points["loom auto"].append((depth, r["loom_rows_per_s"]))
    allv = [v for s in list(series.values()) + list(points.values()) for _, v in s if v > 0]
    depths = [x for s in series.values() for x, _ in s]
    x0, x1 = min(depths), max(depths)
    y0, y1 = math.floor(math.log10(min(allv))), math.ceil(math.log10(max(allv)))

    def px(x):
        return L + (x - x0) / (x1 - x0) * (W - L - R)

    def py(v):
        return T + (y1 - math.log10(v)) / (y1 - y0) * (H - T - B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2 - 60}" y="18" font-size="14">rows/s vs tree depth (100 trees, batch 10k, 1 thread)</text>']
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{L}" y1="{y}" x2="{W - R}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 8}" y="{y + 4}" text-anchor="end">1e{e}</text>')
    for x in sorted(set(depths)):
        out.append(f'<text x="{px(x)}" y="{H - B + 18}" text-anchor="middle">{x}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 10}" text-anchor="middle">max tree depth</text>')
    colors = {"gemm": "#d62728", "tt": "#1f77b4", "ptt": "#2ca02c"}
    names = {"gemm": "GEMM", "tt": "TreeTraversal", "ptt": "PerfectTreeTraversal"}
    ly = T + 10
    for k, pts in series.items():
        path = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(v):.1f}" for i, (x, v) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{colors[k]}" stroke-width="2"/>')
        out.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 30}" y2="{ly}" stroke="{colors[k]}" stroke-width="2"/>')
        out.append(f'<text x="{W - R + 35}" y="{ly + 4}">{names[k]}</text>')
        ly += 18
    marks = {"xgboost inplace_predict": ("#000", "rect"), "loom auto": ("#2ca02c", "circle")}
    for k, pts in points.items():
        color, shape = marks[k]
        for x, v in pts:
            if shape == "rect":
                out.append(f'<rect x="{px(x) - 5}" y="{py(v) - 5}" width="10" height="10" fill="{color}"/>')
            else:
                out.append(f'<circle cx="{px(x)}" cy="{py(v)}" r="5" fill="none" stroke="{color}" stroke-width="2"/>')
        if pts:
            out.append(f'<text x="{W - R + 35}" y="{ly + 4}">{k} (trained)</text>')
            if shape == "rect":
                out.append(f'<rect x="{W - R + 15}" y="{ly - 5}" width="10" height="10" fill="{color}"/>')
            else:
                out.append(f'<circle cx="{W - R + 20}" cy="{ly}" r="5" fill="none" stroke="{color}" stroke-width="2"/>')
            ly += 18
    out.append("</svg>")
    with open(os.path.join(d, "crossover.svg"), "w") as fh:
        fh.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
