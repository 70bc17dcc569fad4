#!/usr/bin/python3
"""bench/studies.py - studies measured on a real daemon, and the README's worked example.

Starts bin/nnd (a temporary data directory, a loopback port) and runs, through
the Python client (clients/python/nnd_client.py):

  example   (a) learning curves of an additive function (p = 10, alpha = 2):
                a sparse bounded deep ReLU network (job "sparsity") against the
                same network dense; fitted slopes beside the theory's -0.8
            (b) wider against deeper at (nearly) equal parameter counts
  calib     linear data (p = 10, noise_std 1), no hidden layer: the learning
            curve's slope against -1 (OLS excess risk sigma^2 p / n)
  halving   successive halving against the grid on 27 configurations: the
            objective of halving's winner over the grid's best, and the epochs
            each trained
  board     GET /v1/studies/{id}/trials?limit=100 of a study of 10,000 trials
            (inserted through the store by bin/bench_study_store)
  workers   trials per second of the same grid study with --workers 2
            against --workers 1

Prints Markdown tables (the README's come from `bench/studies.py example`).
Never pass/fail.

  bench/studies.py [example] [calib] [halving] [board] [workers] [--quick]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from nnd_client import Client  # noqa: E402

NND = os.path.join(ROOT, "bin", "nnd")
QUICK = "--quick" in sys.argv


class Daemon:
    def __init__(self, workers=2, data=None):
        self.tmp = tempfile.mkdtemp(prefix="nnd-bench-studies.")
        self.data = data or os.path.join(self.tmp, "data")
        self.proc = subprocess.Popen([NND, "--listen", "127.0.0.1:0", "--data-dir", self.data,
                                      "--workers", str(workers)],
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        assert line.startswith("listening on "), line
        self.url = "http://" + line.split()[-1]
        self.nnd = Client(self.url, api_key="")
        for _ in range(200):
            try:
                if self.nnd.ready():
                    break
            except Exception:
                pass
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run_study(nnd, doc):
    st = nnd.create_study(doc)
    return nnd.wait_study(st["id"])


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def curve_table(study, label_of):
    rows = []
    for c in study["curves"]:
        lo, hi = (c["slope_ci95"] or [None, None])
        means = " / ".join(fmt(p["mean"], ".4f") for p in c["points"])
        rows.append("| %s | %s | %s | [%s, %s] | %s |" % (
            label_of(c["params"]), means, fmt(c["slope"]), fmt(lo), fmt(hi),
            fmt(c["theory_slope"])))
    return rows


def example(nnd):
    p, rows = 10, [250, 500, 1000, 2000, 4000]
    repeats = 2 if QUICK else 3
    train = nnd.generate_dataset("additive", name="additive p10 a2", inputs=p, rows=max(rows),
                                 smoothness=2.0, noise_std=0.1, function_seed=1, sample_seed=2)
    test = nnd.generate_dataset("additive", name="additive p10 a2 test", inputs=p, rows=2000,
                                smoothness=2.0, noise_std=0.0, function_seed=1, sample_seed=3)
    deep = [{"type": "dense", "units": 64, "activation": "relu"} for _ in range(4)]
    epochs = 40 if QUICK else 80
    job = {"epochs": epochs, "batch_size": 64, "seed": 1,
           "optimizer": {"type": "adam", "lr": 0.003},
           "schedule": {"type": "cosine", "min_lr": 0.0001}}
    sparse = {"max_nonzero": 6000, "start_epoch": epochs // 2, "bound": 1.0}
    doc = {"name": "sparse vs dense", "dataset": train["id"], "test": {"dataset": test["id"]},
           "objective": {"metric": "test_loss"},
           "model": {"seed": 1, "layers": deep}, "job": job,
           "space": {"job.sparsity": [sparse, None]},
           "strategy": {"type": "learning_curve", "rows": rows, "repeats": repeats}}
    t0 = time.time()
    a = run_study(nnd, doc)
    ta = time.time() - t0
    out = ["### (a) Sparse bounded deep ReLU network against the dense one",
           "",
           "Additive f* (p = 10, alpha = 2, noise_std 0.1), test set noise-free (its MSE is "
           "the excess risk); 4 hidden ReLU layers of 64 units (%d epochs of Adam, cosine "
           "schedule); sparse: at most %d nonzero weights from epoch %d, all parameters in "
           "[-1, 1]; %d repeats per size (job and model seeds + r). Rows: %s. Study %s, %.0f s."
           % (epochs, sparse["max_nonzero"], sparse["start_epoch"], repeats,
              ", ".join(map(str, rows)), a["id"], ta),
           "",
           "| network | mean test MSE by rows | slope | 95% interval | theory |",
           "|---|---|---|---|---|"]
    out += curve_table(a, lambda prm: "sparse (6000 weights, bound 1)"
                       if prm.get("job.sparsity") else "dense")
    # (b) wider vs deeper at equal parameters: 1 x 208 (2497) vs 3 x 32 (2497)
    wide = [{"type": "dense", "units": 208, "activation": "relu"}]
    deeper = [{"type": "dense", "units": 32, "activation": "relu"} for _ in range(3)]
    doc_b = dict(doc, name="wider vs deeper", space={"model.layers": [wide, deeper]})
    doc_b["job"] = dict(job)
    t0 = time.time()
    b = run_study(nnd, doc_b)
    tb = time.time() - t0
    out += ["", "### (b) Wider or deeper at equal parameter counts", "",
            "The same data; one hidden layer of 208 ReLU units against three of 32: both "
            "have 2,497 parameters. Study %s, %.0f s." % (b["id"], tb), "",
            "| network | mean test MSE by rows | slope | 95% interval | theory |",
            "|---|---|---|---|---|"]
    out += curve_table(b, lambda prm: "wider: 1 x 208" if len(prm["model.layers"]) == 1
                       else "deeper: 3 x 32")
    return out


def calib(nnd):
    rows = [50, 100, 200, 400, 800, 1600]
    train = nnd.generate_dataset("linear", inputs=10, rows=max(rows), noise_std=1.0)
    test = nnd.generate_dataset("linear", inputs=10, rows=4000, noise_std=0.0, sample_seed=5)
    doc = {"name": "calibration", "dataset": train["id"], "test": {"dataset": test["id"]},
           "objective": {"metric": "test_loss"}, "model": {"layers": [], "seed": 1},
           "job": {"epochs": 1500, "batch_size": 2000, "seed": 1,
                   "optimizer": {"type": "adam", "lr": 0.02},
                   "schedule": {"type": "cosine", "min_lr": 0.00001}},
           "strategy": {"type": "learning_curve", "rows": rows, "repeats": 4}}
    s = run_study(nnd, doc)
    c = s["curves"][0]
    lo, hi = c["slope_ci95"]
    return ["| linear calibration (p 10, noise 1, no hidden layer) | slope %.3f [%.3f, %.3f] "
            "| theory -1 | within 0.1: %s |" % (c["slope"], lo, hi,
                                                "yes" if abs(c["slope"] + 1) <= 0.1 else "no")]


def halving(nnd):
    train = nnd.generate_dataset("additive", inputs=5, rows=2000, noise_std=0.1)
    space = {"model.layers[0].units": [8, 32, 128], "job.optimizer.lr": [0.0003, 0.003, 0.03],
             "job.batch_size": [16, 64, 256]}
    base = {"dataset": train["id"], "validation": {"fraction": 0.2},
            "objective": {"metric": "val_loss"},
            "model": {"seed": 1, "layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
            "job": {"epochs": 27, "seed": 1, "optimizer": {"type": "adam", "lr": 0.001}},
            "space": space, "seed": 4}
    grid = run_study(nnd, dict(base, name="grid", strategy={"type": "grid"}))
    half = run_study(nnd, dict(base, name="halving",
                               strategy={"type": "halving", "trials": 27, "min_epochs": 1,
                                         "reduction_factor": 3}))
    g, h = grid["best"]["value"], half["best"]["value"]
    return ["| successive halving vs grid (27 configurations, 27 epochs) | best %.5f vs %.5f: "
            "%.2f%% worse | epochs %d vs %d: %.3f of the grid's |" % (
                h, g, 100 * (h - g) / g, half["epochs_run"], grid["epochs_run"],
                half["epochs_run"] / grid["epochs_run"])]


def board():
    tool = os.path.join(ROOT, "bin", "bench_study_store")
    if not os.path.exists(tool):
        return ["| leaderboard of 10,000 trials | (bin/bench_study_store missing) | | |"]
    tmp = tempfile.mkdtemp(prefix="nnd-bench-board.")
    data = os.path.join(tmp, "data")
    sid = subprocess.run([tool, data, "10000"], capture_output=True, text=True,
                         check=True).stdout.strip()
    d = Daemon(1, data)
    try:
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            r = d.nnd.study_trials(sid, limit=100)
            times.append(time.perf_counter() - t0)
            assert len(r["trials"]) == 100 and r["total"] == 10000
        times.sort()
        hz = []
        for _ in range(30):
            t0 = time.perf_counter()
            d.nnd.health()
            hz.append(time.perf_counter() - t0)
        hz.sort()
        med = times[len(times) // 2] * 1e3
        return ["| GET trials?limit=100 of 10,000 trials | median %.1f ms (max %.1f) | /healthz "
                "%.2f ms | under 50 ms: %s |" % (med, times[-1] * 1e3, hz[len(hz) // 2] * 1e3,
                                                 "yes" if med < 50 else "no")]
    finally:
        d.stop()


def workers():
    res = {}
    for w in (1, 2):
        d = Daemon(w)
        try:
            train = d.nnd.generate_dataset("additive", inputs=10, rows=4000, noise_std=0.1)
            doc = {"dataset": train["id"], "validation": {"fraction": 0.2},
                   "objective": {"metric": "val_loss"},
                   "model": {"seed": 1, "layers": [{"type": "dense", "units": 64,
                                                    "activation": "relu"}]},
                   "job": {"epochs": 6, "batch_size": 32, "optimizer": {"type": "adam"}},
                   "space": {"job.seed": list(range(8))}, "strategy": {"type": "grid"},
                   "parallelism": w}
            t0 = time.time()
            s = run_study(d.nnd, doc)
            res[w] = s["trials"]["succeeded"] / (time.time() - t0)
        finally:
            d.stop()
    return ["| trials/s, 2 workers vs 1 (8 trials) | %.2f vs %.2f | %.2fx | target 1.8x |"
            % (res[2], res[1], res[2] / res[1])]


def main():
    what = [a for a in sys.argv[1:] if not a.startswith("--")] or \
        ["example", "calib", "halving", "board", "workers"]
    d = Daemon(2)
    out = []
    try:
        if "example" in what:
            out += example(d.nnd) + [""]
        measures = []
        if "calib" in what:
            measures += calib(d.nnd)
        if "halving" in what:
            measures += halving(d.nnd)
    finally:
        d.stop()
    if "board" in what:
        measures += board()
    if "workers" in what:
        measures += workers()
    if measures:
        out += ["| measure | result | ratio / peer | target |", "|---|---|---|---|"] + measures
    print("\n".join(out))


if __name__ == "__main__":
    main()
