#!/usr/bin/env python3
"""Average JCT vs arrival rate per policy, from sweep.json (see run.sh)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from svgplot import line_plot  # noqa: E402

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
rows = json.load(open(os.path.join(d, "sweep.json")))
ss = os.path.join(d, "sweep_ss.json")
if os.path.exists(ss):
    rows += [dict(r, policy=r["policy"] + "+space_sharing") for r in json.load(open(ss))]
series = {}
for r in rows:
    series.setdefault(r["policy"], []).append((r["jobs_per_hour"], r["avg_jct_h"]))
line_plot(os.path.join(d, "jct_vs_load.svg"), "Average JCT vs arrival rate (36 GPUs)", "jobs per hour",
          "average JCT (hours)", series, logy=True)
