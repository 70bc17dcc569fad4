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
            against --workers 1, alternated in rounds, for trials whose
            training dominates and for tiny ones (TMPDIR=/dev/shm puts the
            daemons' data on tmpfs, without the disk's fsync); each daemon
            first runs one unmeasured trial per worker (its warm-up). Two
            peers each round: two CPU-bound Python processes against one,
            and two daemons of one worker each, measured at once, against
            one (the same trials in two processes: what the machine gives
            this workload; 2 workers over it is the one daemon's loss)

Prints Markdown tables (the README's come from `bench/studies.py example`).
Never pass/fail.

  bench/studies.py [example] [calib] [halving] [board] [workers] [--quick] [--nice=N]
                   [--trials=N]
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from nnd_client import Client  # noqa: E402

NND = os.environ.get("NND_BIN") or os.path.join(ROOT, "bin", "nnd")
QUICK = "--quick" in sys.argv
# --nice=N: the daemons of the workers measure run at this niceness (a
# negative one needs root), so that on a machine shared with other work
# they get the cores when they want them, as on a quiet machine
NICE = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--nice=")), 0)
# --trials=N: the trials of each study of the workers measure. A rate, so
# a study long enough that its fixed costs (its first trial's model and job
# made before any worker starts, the last trials' uneven end: a worker idle
# while the other finishes, the study's end) weigh little: with 8 trials of
# 60 ms on two workers those were 8-17% of the study's wall time (three timed)
TRIALS = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--trials=")), 32)


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
        """Ends the daemon and removes its temporary directory (the data
        directory too when it lies inside: a run makes dozens of daemons)."""
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


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
    share = half["epochs_run"] / grid["epochs_run"]
    held = (h - g) <= 0.01 * abs(g) and share <= 1 / 3
    return ["| successive halving vs grid (27 configurations, 27 epochs) | best %.5f vs %.5f: "
            "%.2f%% worse | epochs %d vs %d: %.3f of the grid's | within 1%%, at most 1/3 "
            "of the epochs: %s |" % (h, g, 100 * (h - g) / g, half["epochs_run"],
                                     grid["epochs_run"], share, "yes" if held else "no")]


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
        shutil.rmtree(tmp, ignore_errors=True)


def _cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# The workers measure's trial sizes: "small" is 6 epochs of one layer of 64
# units (some 10-25 ms of training: a trial's dozen durable writes weigh as
# much), "train" 40 epochs of two layers of 64 (some 100-200 ms: training
# dominates). Batches of 32 keep every product under OpenBLAS's threading
# threshold, so one worker's two BLAS threads do not already use both cores.
WORKER_SIZES = {"small": (1, 6), "train": (2, 40)}


def _worker_run(w, size, n_trials, barrier=None):
    """One daemon of w workers: its rate on a study of n_trials, its CPU per
    trial and its pool's occupancy. With a barrier, the measured study starts
    when every party's daemon is warm (two daemons measured at once)."""
    layers, epochs = WORKER_SIZES[size]
    d = Daemon(w)
    try:
        if NICE:
            # every thread the daemon has (its workers, OpenBLAS's); the
            # checkpoint writers inherit their worker's
            for tid in os.listdir("/proc/%d/task" % d.proc.pid):
                os.setpriority(os.PRIO_PROCESS, int(tid), NICE)
        info = d.nnd.info()
        train = d.nnd.generate_dataset("additive", inputs=10, rows=4000, noise_std=0.1)
        doc = {"dataset": train["id"], "validation": {"fraction": 0.2},
               "objective": {"metric": "val_loss"},
               "model": {"seed": 1, "layers": [{"type": "dense", "units": 64,
                                                "activation": "relu"}] * layers},
               "job": {"epochs": epochs, "batch_size": 32, "optimizer": {"type": "adam"}},
               "space": {"job.seed": list(range(n_trials))}, "strategy": {"type": "grid"},
               "parallelism": w}
        # a fresh daemon's first job on each worker pays the process's and
        # the thread's first use (its heap, OpenBLAS's buffers, the data
        # set's pages): some 5-40 ms, once per worker, as much as several
        # small trials. One trial per worker first, unmeasured, so that
        # the measure is the rate of trials, not of a daemon's start.
        run_study(d.nnd, dict(doc, space={"job.seed": list(range(w))}))
        if barrier:
            barrier.wait()
        load = _loadavg()
        c0 = _cpu_seconds(d.proc.pid)
        t0 = time.time()
        s = run_study(d.nnd, doc)
        wall = time.time() - t0
        cpu = _cpu_seconds(d.proc.pid) - c0
        n = s["trials"]["succeeded"]
        assert n == n_trials, s["trials"]
        # the pool's occupancy: the trials' jobs' running time over the
        # workers' time between the study's start and end (1: no worker
        # ever waited for a trial)
        jobs = d.nnd.request("GET", "/v1/jobs", query={"study": s["id"], "limit": 1000})["jobs"]
        busy = sum(_ms(j["finished_at"]) - _ms(j["started_at"]) for j in jobs)
        span = _ms(s["finished_at"]) - _ms(s["started_at"])
        return {"rate": n / wall, "cpu_ms": 1e3 * cpu / n, "load": load,
                "busy": busy / (w * span) if span > 0 else 0,
                "blas": "%s x%d" % (info["blas"]["core"], info["blas"]["threads"])}
    finally:
        d.stop()


def _pair_run(size, n_trials):
    """Two daemons of one worker each, measured at once (each its own study
    of n_trials): their trials per second together. The workload's own
    peer of two workers in one daemon: what two independent processes of
    the same training get from the machine at the moment."""
    import threading
    barrier = threading.Barrier(2)
    res = [None, None]

    def one(i):
        try:
            res[i] = _worker_run(1, size, n_trials, barrier)
        except Exception as e:  # the other party must not wait forever
            barrier.abort()
            res[i] = e
    ts = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in res:
        if isinstance(r, Exception):
            raise r
    # the two studies start together; each rate is its own trials over its
    # own wall time, and together they ran both
    return sum(r["rate"] for r in res)


def _ms(t):
    """An RFC 3339 time of the API, in milliseconds."""
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1e3


def _median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def _spin(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def _machine_ratio():
    """What the machine gives two CPU-bound processes at the moment: the
    rate of two running at once over the rate of one (2.0 on two idle
    cores; the peer of the workers measure)."""
    import multiprocessing

    def run(k):
        ps = [multiprocessing.Process(target=_spin, args=(2000000,)) for _ in range(k)]
        t0 = time.perf_counter()
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        return time.perf_counter() - t0
    t1, t2 = run(1), run(2)
    return 2 * t1 / t2


def workers():
    """Trials/s of the same grid study with --workers 2 against --workers 1,
    alternated in rounds (1 then 2, then 2 then 1, ...) so that a change in
    the machine's load falls on both; medians and ranges, the daemon's CPU
    time per trial (utime + stime: the work a trial costs, which the load
    of other processes hardly changes) and the load average seen."""
    rounds = 3 if QUICK else 5
    n_trials = TRIALS
    out = []
    for size in ("train", "small"):
        runs = {1: [], 2: []}
        machine, pair = [], []
        for r in range(rounds):
            for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                runs[w].append(_worker_run(w, size, n_trials))
            machine.append(_machine_ratio())
            pair.append(_pair_run(size, n_trials) / runs[1][-1]["rate"])
        r1 = [x["rate"] for x in runs[1]]
        r2 = [x["rate"] for x in runs[2]]
        ratios = [b / a for a, b in zip(r1, r2)]
        loads = [x["load"] for x in runs[1] + runs[2]]
        layers, epochs = WORKER_SIZES[size]
        out.append("| trials/s, 2 workers vs 1 (%d trials of %d epochs, %d x 64 units; %d rounds, "
                   "load %.1f-%.1f%s, BLAS %s / %s) | median %.2f [%.2f-%.2f] vs %.2f [%.2f-%.2f]; "
                   "CPU %.1f vs %.1f ms per trial; workers busy %.0f%% vs %.0f%% | "
                   "%.2fx (rounds %.2f-%.2f); two CPU-bound processes %.2fx of one "
                   "(%.2f-%.2f); two 1-worker daemons at once %.2fx of one (%.2f-%.2f) "
                   "| 1.8x: %s |"
                   % (n_trials, epochs, layers, rounds, min(loads), max(loads),
                      ", nice %d" % NICE if NICE else "",
                      runs[2][0]["blas"], runs[1][0]["blas"], _median(r2), min(r2), max(r2),
                      _median(r1), min(r1), max(r1),
                      _median([x["cpu_ms"] for x in runs[2]]),
                      _median([x["cpu_ms"] for x in runs[1]]),
                      100 * _median([x["busy"] for x in runs[2]]),
                      100 * _median([x["busy"] for x in runs[1]]),
                      _median(r2) / _median(r1), min(ratios), max(ratios),
                      _median(machine), min(machine), max(machine),
                      _median(pair), min(pair), max(pair),
                      "yes" if _median(r2) / _median(r1) >= 1.8 else "no"))
    return out


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
