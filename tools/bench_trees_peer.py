#!/usr/bin/env python3
"""Peer side of `loom bench trees`: times the source library's own predictor on the same
rows. Run with Debian's interpreter (python3-xgboost, python3-sklearn):

    /usr/bin/python3 tools/bench_trees_peer.py MODEL X.npy THREADS BATCHES REPEATS

MODEL is an XGBoost JSON model (timed with Booster.inplace_predict, probabilities) or a
tools/gen_trees.py sklearn export whose pickled estimator lies next to it as *.pkl (timed with
predict_proba, or predict for regressors, n_jobs = threads). Prints one JSON array on the last
line: {threads, batch, peer, seconds: [per-call time of each repetition]}.
"""
import json
import os
import pickle
import sys
import time

import numpy as np


def per_call(fn, min_s=0.05):
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= min_s:
            return t / n


def main():
    model, xpath, threads, batches, repeats = sys.argv[1:6]
    X = np.load(xpath).astype(np.float32)
    threads = [int(t) for t in threads.split(",")]
    batches = [int(b) for b in batches.split(",")]
    repeats = int(repeats)
    if model.endswith(".json") and "learner" in open(model).read(4096):
        import xgboost as xgb
        booster = xgb.Booster(model_file=model)
        name = f"xgboost-{xgb.__version__} inplace_predict"

        def setup(t):
            booster.set_param({"nthread": t})

        def predict(rows):
            return booster.inplace_predict(rows)
    else:
        pkl = os.path.splitext(model)[0] + ".pkl"
        with open(pkl, "rb") as fh:
            est = pickle.load(fh)
        import sklearn
        method = est.predict_proba if hasattr(est, "predict_proba") else est.predict
        name = f"sklearn-{sklearn.__version__} {method.__name__}"
        X = np.nan_to_num(X)

        def setup(t):
            if hasattr(est, "n_jobs"):
                est.n_jobs = t

        def predict(rows):
            return method(rows)

    out = []
    for t in threads:
        setup(t)
        for b in batches:
            rows = X[:b] if b <= len(X) else np.resize(X, (b, X.shape[1]))
            predict(rows)  # warm-up
            out.append({"threads": t, "batch": b, "peer": name,
                        "seconds": [per_call(lambda: predict(rows)) for _ in range(repeats)]})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
