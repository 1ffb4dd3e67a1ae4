#!/usr/bin/env python3
"""Tree-ensemble models and golden predictions for loom/trees (Hummingbird).

Run with Debian's interpreter, which owns python3-xgboost and python3-sklearn:

    /usr/bin/python3 tools/gen_trees.py golden        # tests/golden/trees/ (committed, small)
    /usr/bin/python3 tools/gen_trees.py bench DIR     # larger benchmark models (not committed)
    /usr/bin/python3 tools/gen_trees.py export M.pkl OUT.json   # any pickled sklearn model

XGBoost models are written with Booster.save_model('*.json') unchanged (gzip-compressed for
the committed golden set: Loom's importers read gzip transparently). scikit-learn models are
written by `export_sklearn` below in the JSON format documented in docs/trees.md: it holds
sklearn's own `tree_` arrays and the estimator's parameters, and no interpretation; the
meaning (class-count normalisation, averaging, learning rate, init) lives in Loom's importer.

Each golden case NAME has NAME.model.json[.gz] and NAME.golden.json: {"X": rows (null = NaN),
"margin": raw scores, "output": what the library's predict/predict_proba returns}.
"""
import gzip
import json
import os
import pickle
import sys

import numpy as np


def export_sklearn(est, n_features=None):
    """sklearn estimator -> dict in Loom's documented tree-export format (version 1)."""
    name = type(est).__name__
    out = {"format": "loom-sklearn-trees", "version": 1, "estimator": name,
           "n_features": int(n_features if n_features is not None else est.n_features_in_)}
    if hasattr(est, "classes_"):
        out["classes"] = [c.item() if hasattr(c, "item") else c for c in est.classes_]
    if name.startswith("GradientBoosting"):
        stages = est.estimators_  # (n_stages, K) DecisionTreeRegressor
        trees = [t for stage in stages for t in stage]
        out["tree_class"] = [k for _ in range(stages.shape[0]) for k in range(stages.shape[1])]
        out["learning_rate"] = float(est.learning_rate)
        # The init estimator's raw prediction (sklearn adds it before the trees); constant
        # for the default init, so one row is enough.
        x0 = np.zeros((1, out["n_features"]), dtype=np.float32)
        out["init_raw"] = [float(v) for v in est._raw_predict_init(x0)[0]]
        out["loss"] = str(est.loss)
    elif hasattr(est, "estimators_"):
        trees = list(est.estimators_)
    else:
        trees = [est]
    out["trees"] = []
    for t in trees:
        tr = t.tree_
        out["trees"].append({
            "children_left": tr.children_left.tolist(),
            "children_right": tr.children_right.tolist(),
            "feature": tr.feature.tolist(),
            "threshold": [float(v) for v in tr.threshold],
            # (n_nodes, n_outputs, n_values) -> n_nodes rows; Loom supports n_outputs == 1.
            "n_outputs": int(tr.value.shape[1]),
            "value": tr.value.reshape(tr.value.shape[0], -1).tolist(),
        })
    return out


def data(n, f, seed, nan_frac=0.0, classes=2, task="clf"):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    w = rng.normal(size=(f, max(classes, 1)))
    logits = np.tanh(X) @ w + 0.3 * rng.normal(size=(n, max(classes, 1)))
    if task == "reg":
        y = logits[:, 0] + 0.5 * np.sin(3 * X[:, 0])
    else:
        y = np.argmax(logits, axis=1) if classes > 2 else (logits[:, 0] > 0).astype(int)
    if nan_frac > 0:
        X[rng.random(size=X.shape) < nan_frac] = np.nan
    return X, y


def nan_to_null(a):
    return [[None if np.isnan(v) else float(v) for v in row] for row in a]


def write_golden(d, name, X, margin, output):
    with open(os.path.join(d, name + ".golden.json"), "w") as fh:
        json.dump({"X": nan_to_null(X), "margin": np.asarray(margin, dtype=np.float64).reshape(len(X), -1).tolist(),
                   "output": np.asarray(output, dtype=np.float64).reshape(len(X), -1).tolist()}, fh)


def xgb_case(d, name, objective, depth, rounds, n_train, f, classes, nan_frac, compress, n_test=64, seed=0):
    import xgboost as xgb
    X, y = data(n_train + n_test, f, seed, nan_frac, classes, "reg" if objective.startswith("reg") else "clf")
    params = {"objective": objective, "max_depth": depth, "eta": 0.3, "nthread": 1, "seed": seed}
    if objective.startswith("multi"):
        params["num_class"] = classes
    bst = xgb.train(params, xgb.DMatrix(X[:n_train], y[:n_train], missing=np.nan), rounds)
    path = os.path.join(d, name + ".model.json")
    bst.save_model(path)
    if compress:
        with open(path, "rb") as src, gzip.open(path + ".gz", "wb", compresslevel=9) as dst:
            dst.write(src.read())
        os.remove(path)
    Xt = X[n_train:]
    dm = xgb.DMatrix(Xt, missing=np.nan)
    write_golden(d, name, Xt, bst.predict(dm, output_margin=True), bst.predict(dm))
    return bst


def sk_case(d, name, est, f, classes, task, n_train=600, n_test=64, seed=1):
    X, y = data(n_train + n_test, f, seed, 0.0, classes, task)
    est.fit(X[:n_train], y[:n_train])
    with gzip.open(os.path.join(d, name + ".model.json.gz"), "wt", compresslevel=9) as fh:
        json.dump(export_sklearn(est), fh)
    Xt = X[n_train:]
    if hasattr(est, "predict_proba"):
        out = est.predict_proba(Xt)
        margin = est.decision_function(Xt) if hasattr(est, "decision_function") else out
    else:
        out = est.predict(Xt)
        margin = out
    write_golden(d, name, Xt, margin, out)


def golden(root):
    from sklearn import ensemble, tree
    d = os.path.join(root, "tests", "golden", "trees")
    os.makedirs(d, exist_ok=True)
    # XGBoost: binary / multiclass (softprob, softmax) / regression, depth 3..12, 10..500 trees.
    xgb_case(d, "xgb_binary_d3_t500", "binary:logistic", 3, 500, 1000, 8, 2, 0.1, True)
    xgb_case(d, "xgb_binary_d8_t20", "binary:logistic", 8, 20, 2000, 10, 2, 0.1, True)
    xgb_case(d, "xgb_softprob_d5_t10x3", "multi:softprob", 5, 10, 1500, 8, 3, 0.1, True)
    xgb_case(d, "xgb_softmax_d4_t10x4", "multi:softmax", 4, 10, 1500, 8, 4, 0.05, True)
    xgb_case(d, "xgb_reg_d12_t10", "reg:squarederror", 12, 10, 800, 6, 1, 0.1, True)
    xgb_case(d, "xgb_reg_d6_t50_nonan", "reg:squarederror", 6, 50, 1000, 6, 1, 0.0, True)
    # scikit-learn (1.2 trees take no NaN).
    sk_case(d, "sk_dt_clf_d6", tree.DecisionTreeClassifier(max_depth=6, random_state=0), 6, 3, "clf")
    sk_case(d, "sk_dt_reg_d10", tree.DecisionTreeRegressor(max_depth=10, random_state=0), 6, 1, "reg")
    sk_case(d, "sk_rf_clf_t20", ensemble.RandomForestClassifier(20, max_depth=7, random_state=0), 6, 3, "clf")
    sk_case(d, "sk_rf_reg_t10", ensemble.RandomForestRegressor(10, max_depth=8, random_state=0), 6, 1, "reg")
    sk_case(d, "sk_et_clf_t10", ensemble.ExtraTreesClassifier(10, max_depth=6, random_state=0), 6, 2, "clf")
    sk_case(d, "sk_et_reg_t10", ensemble.ExtraTreesRegressor(10, max_depth=6, random_state=0), 6, 1, "reg")
    sk_case(d, "sk_gb_clf_bin", ensemble.GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0), 6, 2, "clf")
    sk_case(d, "sk_gb_clf_multi", ensemble.GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0), 6, 3, "clf")
    sk_case(d, "sk_gb_reg", ensemble.GradientBoostingRegressor(n_estimators=30, max_depth=4, random_state=0), 6, 1, "reg")


def bench(d):
    """Benchmark models: the issue's XGBoost binary cases plus deep and shallow ones, each with
    a 100k-row test matrix (X.npy) that `loom bench trees` and the peer script share."""
    import xgboost as xgb
    from sklearn import ensemble
    os.makedirs(d, exist_ok=True)
    X, y = data(20000 + 100000, 28, 7, 0.02)
    np.save(os.path.join(d, "X.npy"), X[20000:])
    for depth, rounds in [(8, 100), (8, 500), (3, 100), (12, 100)]:
        bst = xgb.train({"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "nthread": 2,
                         "seed": 0}, xgb.DMatrix(X[:20000], y[:20000], missing=np.nan), rounds)
        bst.save_model(os.path.join(d, f"xgb_binary_d{depth}_t{rounds}.json"))
    Xs = np.nan_to_num(X[:20000])
    rf = ensemble.RandomForestClassifier(100, max_depth=8, random_state=0, n_jobs=2).fit(Xs, y[:20000])
    with open(os.path.join(d, "sk_rf_d8_t100.json"), "w") as fh:
        json.dump(export_sklearn(rf), fh)
    with open(os.path.join(d, "sk_rf_d8_t100.pkl"), "wb") as fh:
        pickle.dump(rf, fh)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = sys.argv[1] if len(sys.argv) > 1 else "golden"
    if cmd == "golden":
        golden(root)
    elif cmd == "bench":
        bench(sys.argv[2])
    elif cmd == "export":
        with open(sys.argv[2], "rb") as fh:
            est = pickle.load(fh)
        with open(sys.argv[3], "w") as fh:
            json.dump(export_sklearn(est), fh)
    else:
        sys.exit(f"gen_trees.py: unknown command {cmd!r} (golden, bench, export)")


if __name__ == "__main__":
    main()
