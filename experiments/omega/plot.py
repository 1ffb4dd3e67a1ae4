#!/usr/bin/env python3
"""Plots of experiments/omega from the sweeps' JSON (see run.sh)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from svgplot import line_plot  # noqa: E402

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
dt = json.load(open(os.path.join(d, "decision_time.json")))
series = {}
for r in dt:
    series.setdefault(r["arch"], []).append((r["service_tjob"], max(r["batch"]["wait_mean"], 1e-3)))
line_plot(os.path.join(d, "batch_wait.svg"), "Batch job wait vs service decision time", "service t_job (s)",
          "mean batch wait (s)", series, logx=True, logy=True)
busy = {}
for r in dt:
    busy.setdefault(r["arch"], []).append((r["service_tjob"], 100 * r["schedulers"][0]["busy"]))
line_plot(os.path.join(d, "busyness.svg"), "Busyness of the monolithic / service scheduler", "service t_job (s)",
          "busy (%)", busy, logx=True)
cf = json.load(open(os.path.join(d, "conflicts.json")))
conf = {}
for r in cf:
    svc = [s for s in r["schedulers"] if s["name"] == "service"][0]
    conf.setdefault(f'{r["conflict"]}/{r["commit"]}', []).append((r["service_tjob"], 100 * svc["conflict_fraction"]))
line_plot(os.path.join(d, "conflicts.svg"), "Service scheduler conflict fraction (Omega)", "service t_job (s)",
          "conflicted transactions (%)", conf, logx=True)
sc = json.load(open(os.path.join(d, "scaling.json")))
pts = [(r["batch_schedulers"], max(r["batch"]["wait_mean"], 1e-3)) for r in sc]
line_plot(os.path.join(d, "scaling.svg"), "Batch wait vs number of batch schedulers (t_job = 1 s)",
          "batch schedulers", "mean batch wait (s)", {"omega": pts}, logy=True)
