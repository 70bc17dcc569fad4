#!/usr/bin/python3
"""bench/service.py - nnd's service-side benchmarks, each row a ratio measured in this run.

Drives a real daemon (bin/nnd on an ephemeral loopback port, a temporary data
directory) over HTTP and compares each stage with what a user would pick
instead, or with the same daemon's cheapest route, side by side:

  daemon training      submit -> succeeded of the 784-256-128-10 MLP job (Adam,
                       batch 128, standardize) vs bin/bench_engine on the same job
  two workers          two such jobs at once on two workers vs one job alone:
                       aggregate samples/s
  CSV upload           Fashion-MNIST train as CSV (generated once into the cache
                       dir) end to end vs pandas.read_csv(dtype=float32)
  CSV, text columns    a generated penguin-like file (text columns, NA holes;
                       cached) end to end vs pandas.read_csv (types inferred)
  IDX upload           the gzip IDX pair (multipart) vs `zcat FILES > /dev/null`
  predict latency      one keep-alive connection, 10k single-row predicts vs
                       10k GET /healthz (bin/bench_latency, C, raw sockets);
                       the JSON body, then the same row as float32
                       (application/octet-stream, reply float32 too)
  predict throughput   wrk -c16 single-row predicts vs wrk -c16 /healthz
                       (JSON, then float32)
  dense single row     the same two rows for a row without zeros (random
                       integers 0..255) on fresh weights: the path no sparse
                       kernel helps; then the p50 of 4 such rows a request
  batch predict        10,000 rows in one request vs PyTorch forward (+softmax)
                       of the same weights in-process: the JSON body and reply,
                       then float32 rows in and out
  peak memory          daemon VmHWM while training (peak reset before the job)
                       vs the stored data set bytes + the model's training state

Peers run under the daemon's OpenBLAS core (OPENBLAS_CORETYPE as the daemon
selected it, or as the caller set it) and with as many threads as one job.
Never pass/fail; bench/run calls it (--rows-only) to print one table.

  bench/service.py [--quick] [--rows-only] [--only=uploads,training,predict]
  bench/service.py --ab=OLD_NND [--rounds=5]
      single rows only, of both kinds (a Fashion-MNIST test row on weights
      trained one epoch, a dense random row on fresh weights), and 4 dense
      rows a request (the packed-weight blocks), on bin/nnd and
      on OLD_NND, the two daemons taking turns round after round: per round
      and daemon the ratios to its own /healthz; the median and the range.
  bench/service.py --ab-csv=OLD_NND [--rounds=7]
      the all-numeric Fashion-MNIST CSV upload on bin/nnd and on OLD_NND,
      taking turns: MB/s per round, medians, new/old and the range.
  bench/service.py --ab-idx=OLD_NND [--rounds=7]
      the IDX upload row on bin/nnd and on OLD_NND, taking turns, zcat in
      every round: per round MB/s and daemon CPU s; each side's median
      ratio to the same round's zcat, with the range, and new/old.
  bench/service.py --ab-train=OLD_NND [--rounds=7]
      the daemon training row (2 epochs) on bin/nnd and on OLD_NND, taking
      turns, bin/bench_engine in every round: each side's median overhead
      against the same round's engine, the range, submit-to-running.
"""
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NND = os.path.join(ROOT, "bin", "nnd")
ENGINE = os.path.join(ROOT, "bin", "bench_engine")
LATENCY = os.path.join(ROOT, "bin", "bench_latency")
PYTHON = "/usr/bin/python3"
FMNIST = "/usr/share/datasets/fashion-mnist"
IMAGES = os.path.join(FMNIST, "train-images-idx3-ubyte.gz")
LABELS = os.path.join(FMNIST, "train-labels-idx1-ubyte.gz")
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or "/tmp", "nnd-bench")
MLP = [{"type": "dense", "units": 256, "activation": "relu"},
       {"type": "dense", "units": 128, "activation": "relu"}]


def row(stage, nnd, peer, ratio, target):
    print(f"{stage:<44} {nnd:>14} {peer:>14} {ratio:>8}  {target}", flush=True)


def note(text):
    print("  " + text, flush=True)


# ---- the daemon

class Daemon:
    """bin/nnd on 127.0.0.1:0 with a temporary data directory."""

    def __init__(self, workers, env, binary=None, prefix=(), extra=(), log_level="warn",
                 stop_signal=signal.SIGTERM):
        """prefix: a command put before nnd's (mpirun ...), extra: more flags;
        stop_signal: what stop() sends (SIGUSR1 for mpirun, which forwards it)."""
        self.dir = tempfile.mkdtemp(prefix="nnd-bench-")
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.stop_signal = stop_signal
        self.proc = subprocess.Popen(list(prefix) + [binary or NND, "--listen", "127.0.0.1:0",
                                      "--data-dir", os.path.join(self.dir, "data"), "--workers",
                                      str(workers), "--log-level", log_level] + list(extra),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=env)
        self.port = None
        for _ in range(1000):
            self.log.seek(0)
            first = self.log.readline()
            m = re.match(r"listening on .*:(\d+)\n", first)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        if not self.port:
            self.stop()
            raise RuntimeError("nnd did not start")
        for _ in range(1000):
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        self.info = self.request("GET", "/v1/info")[1]

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def request(self, method, path, body=None, ctype="application/json", conn=None, raw=False):
        c = conn or self.conn()
        headers = {}
        if body is not None:
            headers["Content-Type"] = ctype
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        if raw:
            return r.status, data
        if r.getheader("Content-Type", "").startswith(("application/json",
                                                        "application/problem+json")):
            data = json.loads(data)
        return r.status, data

    def coretype(self):
        """OPENBLAS_CORETYPE in the daemon's environment (set by its autoselect)."""
        try:
            with open(f"/proc/{self.proc.pid}/environ", "rb") as f:
                for kv in f.read().split(b"\0"):
                    if kv.startswith(b"OPENBLAS_CORETYPE="):
                        return kv.split(b"=", 1)[1].decode()
        except OSError:
            pass
        return None

    def status_kb(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        """User + system CPU seconds of every daemon thread so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self):
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")

    def wait_job(self, job_id):
        """Follows the job's ndjson event stream to its end; returns the job object."""
        c = self.conn()
        c.request("GET", f"/v1/jobs/{job_id}/events?format=ndjson")
        r = c.getresponse()
        last = None
        for line in r:
            line = line.strip()
            if not line:
                continue
            ev = json.loads(line)
            if ev.get("event") == "state":
                last = ev["data"]
        c.close()
        if last is None or last.get("state") != "succeeded":
            raise RuntimeError(f"job {job_id} ended {last and last.get('state')}: {last}")
        return last

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def check(status, body, want=(200, 201, 202)):
    if status not in want:
        raise RuntimeError(f"HTTP {status}: {body}")
    return body


# ---- data

def fmnist_csv():
    """The Fashion-MNIST train set as CSV (784 pixel columns, then label), cached."""
    path = os.path.join(CACHE, "fashion-mnist-train.csv")
    if os.path.exists(path):
        return path
    import numpy as np
    os.makedirs(CACHE, exist_ok=True)
    with gzip.open(IMAGES) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(LABELS) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    text = [str(i).encode() for i in range(256)]
    tmp = path + f".tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(",".join([f"p{i}" for i in range(784)] + ["label"]).encode() + b"\n")
        for r in range(len(x)):
            f.write(b",".join([text[v] for v in x[r].tolist()] + [text[y[r]]]) + b"\n")
    os.replace(tmp, path)
    return path


def tabular_csv(rows=400000):
    """A penguin-like CSV (text columns, NA holes, species last), cached."""
    path = os.path.join(CACHE, f"tabular-{rows}.csv")
    if os.path.exists(path):
        return path
    import random
    rnd = random.Random(7)
    os.makedirs(CACHE, exist_ok=True)
    tmp = path + f".tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,"
                "year,species\n")
        for _ in range(rows):
            num = [f"{rnd.uniform(30, 60):.1f}", f"{rnd.uniform(13, 22):.1f}",
                   str(rnd.randint(170, 235)), str(rnd.randint(2700, 6300))]
            for k in range(4):
                if rnd.random() < 0.01:
                    num[k] = "NA"
            sex = "NA" if rnd.random() < 0.03 else rnd.choice(("male", "female"))
            f.write(f"{rnd.choice(('Biscoe', 'Dream', 'Torgersen'))},{','.join(num)},{sex},"
                    f"{rnd.randint(2007, 2009)},"
                    f"{rnd.choice(('Adelie', 'Chinstrap', 'Gentoo'))}\n")
    os.replace(tmp, path)
    return path


def upload_rate(d, body, query, cpu=None):
    """MB/s of one CSV upload (the data set deleted after); with cpu (a
    list), the daemon's CPU seconds for it are appended there."""
    c0 = d.cpu_seconds()
    t0 = time.perf_counter()
    ds = check(*d.request("POST", "/v1/datasets" + query, body, "text/csv"))
    t = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(d.cpu_seconds() - c0)
    d.request("DELETE", f"/v1/datasets/{ds['id']}")
    return len(body) / 1e6 / t


def bench_ab_csv(env, old, rounds):
    """The all-numeric CSV upload, bin/nnd and old taking turns."""
    body = open(fmnist_csv(), "rb").read()
    new_d, old_d = Daemon(1, env), Daemon(1, env, binary=old)
    try:
        for d in (new_d, old_d):  # the first upload faults memory in
            upload_rate(d, body, "?label=label")
        r_new, r_old, c_new, c_old = [], [], [], []
        for i in range(rounds):
            pair = (new_d, old_d) if i % 2 == 0 else (old_d, new_d)
            for d in pair:
                new = d is new_d
                (r_new if new else r_old).append(
                    upload_rate(d, body, "?label=label", c_new if new else c_old))
            note(f"round {i}: new {r_new[-1]:.1f} MB/s, old {r_old[-1]:.1f} MB/s; daemon CPU "
                 f"new {c_new[-1]:.3f} s, old {c_old[-1]:.3f} s; load {os.getloadavg()[0]:.1f}")
        med = lambda v: sorted(v)[len(v) // 2]
        ratios = sorted(n / o for n, o in zip(r_new, r_old))
        row(f"CSV upload, all numeric ({len(body) / 1e6:.0f} MB) MB/s", f"{med(r_new):.1f}",
            f"{med(r_old):.1f} old", f"{med(r_new) / med(r_old):.3f}x", ">= 0.97x")
        note(f"per-round new/old {ratios[0]:.3f} .. {ratios[-1]:.3f} over {rounds} rounds")
        # CPU seconds drift less with other processes' load than wall time
        cr = sorted(o / n for n, o in zip(c_new, c_old))
        row("  the same, daemon CPU s per upload (old/new)", f"{med(c_new):.3f} s",
            f"{med(c_old):.3f} s old", f"{med(c_old) / med(c_new):.3f}x", ">= 0.97x")
        note(f"per-round old/new CPU {cr[0]:.3f} .. {cr[-1]:.3f}")
    finally:
        new_d.stop()
        old_d.stop()


def ab_sides(env, old, workers=2):
    """bin/nnd ("new") and old ("old") daemons, each with the IDX pair uploaded."""
    sides = {}
    for name, binary in (("new", NND), ("old", old)):
        d = Daemon(workers, env, binary)
        sides[name] = (d, upload_idx(d))
    return sides


def ab_turns(sides, rnd):
    """The two sides in this round's order (they swap every round)."""
    order = sorted(sides) if rnd % 2 else sorted(sides, reverse=True)
    return [(s, sides[s][0], sides[s][1]) for s in order]


def med(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def bench_ab_idx(env, old, rounds):
    """The IDX upload on bin/nnd and on old, taking turns, with zcat each round."""
    body, ctype = multipart([("images", "train-images-idx3-ubyte.gz", open(IMAGES, "rb").read()),
                             ("labels", "train-labels-idx1-ubyte.gz", open(LABELS, "rb").read())])
    mb = (os.path.getsize(IMAGES) + os.path.getsize(LABELS)) / 1e6
    sides = ab_sides(env, old)   # the first upload (made there) faults memory in
    rate = {"new": [], "old": [], "zcat": []}
    cpu = {"new": [], "old": []}
    try:
        for rnd in range(rounds):
            for s, d, _ in ab_turns(sides, rnd):
                c0 = d.cpu_seconds()
                t0 = time.perf_counter()
                ds = check(*d.request("POST", "/v1/datasets?name=ab", body, ctype))
                rate[s].append(mb / (time.perf_counter() - t0))
                cpu[s].append(d.cpu_seconds() - c0)
                d.request("DELETE", f"/v1/datasets/{ds['id']}")
            t0 = time.perf_counter()
            subprocess.run(["zcat", IMAGES, LABELS], stdout=subprocess.DEVNULL, check=True)
            rate["zcat"].append(mb / (time.perf_counter() - t0))
            note(f"round {rnd + 1}: new {rate['new'][-1]:.1f} MB/s, old {rate['old'][-1]:.1f} "
                 f"MB/s, zcat {rate['zcat'][-1]:.1f} MB/s; daemon CPU new {cpu['new'][-1]:.2f} s, "
                 f"old {cpu['old'][-1]:.2f} s; load {os.getloadavg()[0]:.1f}")
    finally:
        for d, _ in sides.values():
            d.stop()
    for s in ("new", "old"):
        r = [a / z for a, z in zip(rate[s], rate["zcat"])]
        row(f"IDX upload MB/s, {s} (x zcat, same round)", f"{med(rate[s]):.1f}",
            f"{med(rate['zcat']):.1f} zcat", spread(r), ">= 0.7x")
    r = [n / o for n, o in zip(rate["new"], rate["old"])]
    row("  new/old, per round", "", "", spread(r), "")
    row("  daemon CPU s per upload, new/old", f"{med(cpu['new']):.2f} s",
        f"{med(cpu['old']):.2f} s old", spread([n / o for n, o in zip(cpu["new"], cpu["old"])]),
        "")


def bench_ab_train(env, old, rounds, epochs=2):
    """The daemon training row on bin/nnd and on old, taking turns, with the
    engine alone each round."""
    sides = ab_sides(env, old)
    wall = {"new": [], "old": [], "engine": []}
    start = {"new": [], "old": []}
    try:
        for rnd in range(rounds):
            for s, d, ds in ab_turns(sides, rnd):
                model = new_model(d)
                t0 = time.perf_counter()
                last = d.wait_job(submit(d, model["id"], ds["id"], epochs))
                wall[s].append(time.perf_counter() - t0)
                start[s].append(job_split(last)[0])
                check(*d.request("DELETE", f"/v1/models/{model['id']}"), want=(204,))
            e = run_json([ENGINE, "--epochs", str(epochs), "--threads", "1", "--init", "auto",
                          "--no-roofline"], env)
            wall["engine"].append(e["wall_seconds"])
            note(f"round {rnd + 1}: new {wall['new'][-1]:.3f} s (start {start['new'][-1]:.3f}), "
                 f"old {wall['old'][-1]:.3f} s (start {start['old'][-1]:.3f}), engine "
                 f"{wall['engine'][-1]:.3f} s; load {os.getloadavg()[0]:.1f}")
    finally:
        for d, _ in sides.values():
            d.stop()
    for s in ("new", "old"):
        over = [(t / e - 1) * 100 for t, e in zip(wall[s], wall["engine"])]
        v = sorted(over)
        row(f"daemon training, {epochs} epochs, {s}", f"{med(wall[s]):.3f} s",
            f"{med(wall['engine']):.3f} s engine",
            f"{med(over):+.1f}%", f"overhead <= 5% (per round {v[0]:+.1f}..{v[-1]:+.1f}%)")
        note(f"{s}: submit to running, median {med(start[s]):.3f} s; best rounds: daemon "
             f"{min(wall[s]):.3f} s vs engine {min(wall['engine']):.3f} s = "
             f"{(min(wall[s]) / min(wall['engine']) - 1) * 100:+.1f}%")


def multipart(parts):
    """A multipart/form-data body from (name, filename, bytes) parts."""
    boundary = "nndbench" + os.urandom(8).hex()
    out = []
    for name, filename, data in parts:
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                   f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                   .encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def run_json(cmd, env, timeout=600):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr.strip()[-500:]}")
    for line in reversed(out.stdout.strip().splitlines()):
        if line.strip().startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{cmd[0]}: no JSON line")


def best(values, key=min):
    return key(values)


# ---- the rows

def upload_idx(d):
    body, ctype = multipart([("images", "i.gz", open(IMAGES, "rb").read()),
                             ("labels", "l.gz", open(LABELS, "rb").read())])
    return check(*d.request("POST", "/v1/datasets?name=fmnist-idx", body, ctype))


def bench_uploads(d, env, reps):
    """IDX (gzip, multipart) and CSV uploads against zcat and pandas."""
    idx_body, idx_type = multipart([("images", "train-images-idx3-ubyte.gz",
                                     open(IMAGES, "rb").read()),
                                    ("labels", "train-labels-idx1-ubyte.gz",
                                     open(LABELS, "rb").read())])
    gz_bytes = os.path.getsize(IMAGES) + os.path.getsize(LABELS)
    t_idx, t_zcat, ds = [], [], None
    # one more than the other rows: the daemon's first upload also faults in
    # memory the process never had (about 0.6 s each, so cheap)
    idx_reps = reps + 1
    for _ in range(idx_reps):
        t0 = time.perf_counter()
        ds = check(*d.request("POST", "/v1/datasets?name=fmnist-idx", idx_body, idx_type))
        t_idx.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["zcat", IMAGES, LABELS], stdout=subprocess.DEVNULL, check=True)
        t_zcat.append(time.perf_counter() - t0)
        if len(t_idx) < idx_reps:
            d.request("DELETE", f"/v1/datasets/{ds['id']}")
    mb = gz_bytes / 1e6
    idx_rate, zcat_rate = mb / min(t_idx), mb / min(t_zcat)
    row("IDX upload (gzip, multipart) MB/s", f"{idx_rate:.1f}", f"{zcat_rate:.1f} zcat",
        f"{idx_rate / zcat_rate:.2f}x", ">= 0.7x")

    csv = fmnist_csv()
    csv_body = open(csv, "rb").read()
    code = ("import sys, time, numpy as np, pandas as pd\n"
            "t0 = time.perf_counter()\n"
            "df = pd.read_csv(sys.argv[1], dtype=np.float32)\n"
            "x = df.to_numpy(dtype=np.float32)\n"
            "print(time.perf_counter() - t0, x.shape[0])\n")
    t_csv, t_pd = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        cds = check(*d.request("POST", "/v1/datasets?name=fmnist-csv&label=label", csv_body,
                               "text/csv"))
        t_csv.append(time.perf_counter() - t0)
        d.request("DELETE", f"/v1/datasets/{cds['id']}")
        out = subprocess.run([PYTHON, "-c", code, csv], env=env, capture_output=True,
                             text=True, check=True)
        t_pd.append(float(out.stdout.split()[0]))
    mb = len(csv_body) / 1e6
    csv_rate, pd_rate = mb / min(t_csv), mb / min(t_pd)
    row(f"CSV upload ({mb:.0f} MB) MB/s end to end", f"{csv_rate:.1f}",
        f"{pd_rate:.1f} pandas", f"{csv_rate / pd_rate:.2f}x", ">= 1.5x")

    # text columns and holes: typed, levels sorted, encoded (one more pass)
    tab = tabular_csv()
    tab_body = open(tab, "rb").read()
    code = ("import sys, time, pandas as pd\n"
            "t0 = time.perf_counter()\n"
            "df = pd.read_csv(sys.argv[1])\n"
            "print(time.perf_counter() - t0, len(df))\n")
    t_tab, t_pd = [], []
    for _ in range(reps):
        t_tab.append(len(tab_body) / 1e6 / upload_rate(d, tab_body, "?label=species"))
        out = subprocess.run([PYTHON, "-c", code, tab], env=env, capture_output=True,
                             text=True, check=True)
        t_pd.append(float(out.stdout.split()[0]))
    mb = len(tab_body) / 1e6
    tab_rate, pd_rate = mb / min(t_tab), mb / min(t_pd)
    row(f"CSV upload, text columns ({mb:.0f} MB) MB/s", f"{tab_rate:.1f}",
        f"{pd_rate:.1f} pandas", f"{tab_rate / pd_rate:.2f}x", "(cost)")
    return ds


def submit(d, model, ds, epochs, seed=1):
    job = {"model": model, "dataset": ds, "epochs": epochs, "batch_size": 128, "seed": seed,
           "optimizer": {"type": "adam", "lr": 0.001}, "standardize": True}
    return check(*d.request("POST", "/v1/jobs", job))["id"]


def rfc3339(t):
    """Seconds since the epoch of an RFC 3339 UTC time with milliseconds."""
    import datetime
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def job_split(job):
    """(created -> started, started -> finished) seconds of a finished job."""
    c, s, f = (rfc3339(job[k]) for k in ("created_at", "started_at", "finished_at"))
    return s - c, f - s


def metric(job, key):
    m = job.get("metrics")
    if isinstance(m, str):
        m = json.loads(m)
    return float((m or {}).get(key) or 0)


def new_model(d, seed=1):
    spec = {"name": "fmnist-mlp", "task": "classification", "inputs": 784, "outputs": 10,
            "seed": seed, "layers": MLP}
    return check(*d.request("POST", "/v1/models", spec))


def two_jobs(d, ds, epochs):
    """Two jobs submitted together on one data set: (seconds to both succeeded,
    daemon cores busy meanwhile)."""
    c0 = d.cpu_seconds()
    m1, m2 = new_model(d, 1), new_model(d, 2)
    t0 = time.perf_counter()
    j1 = submit(d, m1["id"], ds["id"], epochs, 1)
    j2 = submit(d, m2["id"], ds["id"], epochs, 2)
    done = {}
    ths = [threading.Thread(target=lambda j=j: done.__setitem__(j, d.wait_job(j)))
           for j in (j1, j2)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if len(done) != 2:
        raise RuntimeError("a concurrent job failed")
    t = time.perf_counter() - t0
    cores = (d.cpu_seconds() - c0) / t
    # gone again, so the next single job's peak RSS is taken on the daemon
    # state it would have without this round (no extra models cached)
    for m in (m1, m2):
        check(*d.request("DELETE", f"/v1/models/{m['id']}"), want=(204,))
    return t, cores


def bench_training(d, env, ds, epochs, reps):
    """One job through the daemon vs the engine alone; two jobs vs one; peak RSS.
    Each round runs all three in turn, so drift in the machine's load hits each
    side alike, and each side takes its best of the same number of rounds (a
    best of more rounds is lower by chance alone)."""
    rows = ds["rows"]
    t_daemon, t_engine, model, split, e_sps = [], [], None, [], []
    t_two, cores = [], []
    peak_kb = 0
    for i in range(reps):
        model = new_model(d)
        d.reset_peak()
        t0 = time.perf_counter()
        job = submit(d, model["id"], ds["id"], epochs)
        last = d.wait_job(job)
        t_daemon.append(time.perf_counter() - t0)
        split.append(job_split(last) + (metric(last, "samples_per_second"),))
        peak_kb = max(peak_kb, d.status_kb("VmHWM"))
        e = run_json([ENGINE, "--epochs", str(epochs), "--threads", "1", "--init", "auto",
                      "--no-roofline"], env)
        t_engine.append(e["wall_seconds"])
        e_sps.append(e["samples_per_second"])
        # two jobs on two workers at once (compared with one job on one worker)
        t, c = two_jobs(d, ds, epochs)
        t_two.append(t)
        cores.append(c)
    td, te = min(t_daemon), min(t_engine)
    row(f"daemon training, {epochs} epoch(s), seconds", f"{td:.2f} s", f"{te:.2f} s engine",
        f"{(td / te - 1) * 100:+.1f}%", "overhead <= 5%")
    q, run, sps = split[t_daemon.index(td)]
    note(f"daemon job: {q:.2f} s submit to running (loading the data set), {run:.2f} s running "
         f"(training, checkpoints, publishing); steps at {sps:,.0f} samples/s in the daemon, "
         f"{e_sps[t_engine.index(te)]:,.0f} in the engine alone (nn_train only)")

    one_rate = rows * epochs / min(t_daemon)
    two_rate = 2 * rows * epochs / min(t_two)
    row("two jobs on two workers, samples/s", f"{two_rate:,.0f}", f"{one_rate:,.0f} one",
        f"{two_rate / one_rate:.2f}x", ">= 1.8x")
    note(f"the two jobs kept {max(cores):.2f} of {os.cpu_count()} cores busy; load average "
         f"{os.getloadavg()[0]:.1f} (other processes compete for the cores)")

    d.two_rate = two_rate
    params = model["parameters"]
    # training state: weights, gradients and Adam's two moments, float32
    model_bytes = 4 * 4 * params
    data_bytes = ds["bytes"]
    peak = peak_kb * 1024
    row("peak RSS while training (MB)", f"{peak / 1e6:.0f} MB",
        f"{data_bytes / 1e6:.0f} MB data", f"{(peak - model_bytes) / data_bytes:.2f}x",
        "<= 1.5x + model")
    note(f"model = weights, gradients, Adam moments: {model_bytes / 1e6:.1f} MB "
         f"({params:,} parameters)")
    return model


def bench_blas_threads(env, epochs, two_rate):
    """One job on a one-worker daemon (two BLAS threads) vs two jobs with one each."""
    d1 = Daemon(1, env)
    try:
        threads = d1.info.get("blas", {}).get("threads")
        ds = upload_idx(d1)
        m = new_model(d1)
        t0 = time.perf_counter()
        d1.wait_job(submit(d1, m["id"], ds["id"], epochs))
        rate = ds["rows"] * epochs / (time.perf_counter() - t0)
    finally:
        d1.stop()
    row(f"  one job on 1 worker, {threads} BLAS threads", f"{rate:,.0f}",
        f"{two_rate:,.0f} 2 jobs", f"{rate / two_rate:.2f}x", "(2 x 1 thread wins if < 1)")


def write_lua(path, body_file, ctype="application/json", accept=None):
    with open(path, "w") as f:
        f.write("local f = io.open(%r, 'rb')\n" % body_file +
                "wrk.method = 'POST'\n"
                "wrk.body = f:read('*a')\n"
                "f:close()\n"
                "wrk.headers['Content-Type'] = '%s'\n" % ctype +
                ("wrk.headers['Accept'] = '%s'\n" % accept if accept else ""))


def wrk(d, path, seconds, script=None):
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://127.0.0.1:{d.port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    m = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out.stdout)
    if not m or bad:
        raise RuntimeError("wrk: " + out.stdout[-500:])
    return float(m.group(1))


def dense_row_file(workdir, seed=11, rows=1):
    """A JSON body of rows (one by default) of 784 random integers 0..255
    (none of them 0); the first row is the same whatever rows is."""
    import random
    rnd = random.Random(seed)
    path = os.path.join(workdir, "dense.json" if rows == 1 else f"dense{rows}.json")
    with open(path, "w") as f:
        json.dump({"instances": [[rnd.randint(1, 255) for _ in range(784)]
                                 for _ in range(rows)]}, f)
    return path


def fmnist_row_file(workdir):
    """A JSON body of the first Fashion-MNIST test row."""
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        pixels = list(f.read(16 + 784)[16:])
    path = os.path.join(workdir, "one.json")
    with open(path, "w") as f:
        json.dump({"instances": [pixels]}, f)
    return path


def spread(values):
    v = sorted(values)
    mid = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    return f"{mid:.2f}x [{v[0]:.2f}..{v[-1]:.2f}]"


def bench_ab(env, old_bin, rounds, n_lat, wrk_seconds, workdir):
    """Single rows of both kinds on bin/nnd ("new") and old_bin ("old"), taking turns."""
    sides = {}
    for name, binary in (("new", NND), ("old", old_bin)):
        d = Daemon(2, env, binary)
        ds = upload_idx(d)
        trained = new_model(d)
        d.wait_job(submit(d, trained["id"], ds["id"], 1))
        fresh = new_model(d, seed=7)
        sides[name] = (d, trained, fresh)
    bodies = {"fmnist": fmnist_row_file(workdir), "dense": dense_row_file(workdir),
              "dense4": dense_row_file(workdir, rows=4)}
    lat = {(s, k): [] for s in sides for k in bodies}
    thr = {(s, k): [] for s in sides for k in bodies}
    try:
        for rnd in range(rounds):
            for s, (d, trained, fresh) in (sorted(sides.items()) if rnd % 2 else
                                          sorted(sides.items(), reverse=True)):
                paths = {"fmnist": f"/v1/models/{trained['id']}/predict",
                         "dense": f"/v1/models/{fresh['id']}/predict",
                         "dense4": f"/v1/models/{fresh['id']}/predict"}
                h = run_json([LATENCY, "--port", str(d.port), "--path", "/healthz",
                              "--n", str(n_lat)], env)
                for k in bodies:
                    p = run_json([LATENCY, "--port", str(d.port), "--path", paths[k],
                                  "--body", bodies[k], "--n", str(n_lat)], env)
                    lat[(s, k)].append(p["p50_us"] / h["p50_us"])
                rh = wrk(d, "/healthz", wrk_seconds)
                for k in bodies:
                    lua = os.path.join(workdir, f"{k}.lua")
                    write_lua(lua, bodies[k])
                    thr[(s, k)].append(wrk(d, paths[k], wrk_seconds, lua) / rh)
                print(f"  round {rnd + 1} {s}: p50/healthz " +
                      ", ".join(f"{k} {lat[(s, k)][-1]:.2f}x" for k in bodies) +
                      "; wrk/healthz " + ", ".join(f"{k} {thr[(s, k)][-1]:.2f}x"
                                                    for k in bodies), flush=True)
    finally:
        for d, _, _ in sides.values():
            d.stop()
    for k, label in (("fmnist", "Fashion-MNIST row, trained"), ("dense", "dense row, fresh"),
                     ("dense4", "4 dense rows a request, fresh")):
        target = ("", "") if k == "dense4" else ("<= 1.5x", ">= 0.6x")
        for s in ("old", "new"):
            row(f"{label}, p50/healthz, {s}", spread(lat[(s, k)]), "", "", target[0])
            row(f"{label}, wrk -c16/healthz, {s}", spread(thr[(s, k)]), "", "", target[1])


def bench_predict(d, env, model, n_lat, wrk_seconds, reps, workdir):
    import numpy as np
    with gzip.open(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")) as f:
        xte = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    one = os.path.join(workdir, "one.json")
    with open(one, "w") as f:
        json.dump({"instances": [xte[0].tolist()]}, f)
    one_bin = os.path.join(workdir, "one.f32")
    xte[:1].astype("<f4").tofile(one_bin)
    binary = ["--ctype", "application/octet-stream", "--accept", "application/octet-stream"]
    path = f"/v1/models/{model['id']}/predict"

    # the same body to a model with one hidden unit: the service's own cost
    # (body, JSON, snapshot, reply) without the MLP's forward pass
    tiny = check(*d.request("POST", "/v1/models", {
        "name": "tiny", "task": "classification", "inputs": 784, "outputs": 10, "seed": 1,
        "layers": [{"type": "dense", "units": 1}]}))
    # healthz, JSON, float32 and tiny-model runs take turns, so drift hits all
    # of them; each is timed on its own (bench_latency --versus would time a
    # predict right after each /healthz instead, each warming the other's caches)
    hz, pr, pb, tn = [], [], [], []
    for _ in range(reps):
        hz.append(run_json([LATENCY, "--port", str(d.port), "--path", "/healthz",
                            "--n", str(n_lat)], env))
        pr.append(run_json([LATENCY, "--port", str(d.port), "--path", path, "--body", one,
                            "--n", str(n_lat)], env))
        pb.append(run_json([LATENCY, "--port", str(d.port), "--path", path, "--body", one_bin,
                            "--n", str(n_lat)] + binary, env))
        tn.append(run_json([LATENCY, "--port", str(d.port), "--path",
                            f"/v1/models/{tiny['id']}/predict", "--body", one, "--n", str(n_lat)],
                           env))
    h = min(hz, key=lambda r: r["p50_us"])
    p = min(pr, key=lambda r: r["p50_us"])
    b = min(pb, key=lambda r: r["p50_us"])
    row(f"single-row predict p50, 1 conn, {n_lat // 1000}k req", f"{p['p50_us']:.0f} us",
        f"{h['p50_us']:.0f} us healthz", f"{p['p50_us'] / h['p50_us']:.2f}x", "<= 1.5x")
    row("single-row predict p99", f"{p['p99_us']:.0f} us", f"{h['p99_us']:.0f} us healthz",
        f"{p['p99_us'] / h['p99_us']:.2f}x", "")
    row("  the same, float32 row in and out, p50", f"{b['p50_us']:.0f} us",
        f"{h['p50_us']:.0f} us healthz", f"{b['p50_us'] / h['p50_us']:.2f}x", "(extension)")
    t = min(tn, key=lambda r: r["p50_us"])
    note(f"p50 split: /healthz {h['p50_us']:.0f} us, + body and JSON of 784 inputs "
         f"{t['p50_us'] - h['p50_us']:.0f} us (a 784-1-10 model), + the MLP's forward "
         f"{p['p50_us'] - t['p50_us']:.0f} us")

    lua = os.path.join(workdir, "predict.lua")
    write_lua(lua, one)
    lua_bin = os.path.join(workdir, "predict_bin.lua")
    write_lua(lua_bin, one_bin, "application/octet-stream", "application/octet-stream")
    rh, rp, rb = [], [], []
    for _ in range(max(2, reps - 1)):   # two rounds at least: one slow /healthz run skews
        rh.append(wrk(d, "/healthz", wrk_seconds))
        rp.append(wrk(d, path, wrk_seconds, lua))
        rb.append(wrk(d, path, wrk_seconds, lua_bin))
    rh, rp, rb = max(rh), max(rp), max(rb)
    row("single-row predict, wrk -c16, req/s", f"{rp:,.0f}", f"{rh:,.0f} healthz",
        f"{rp / rh:.2f}x", ">= 0.6x")
    row("  the same, float32 row in and out", f"{rb:,.0f}", f"{rh:,.0f} healthz",
        f"{rb / rh:.2f}x", "(extension)")

    # a row without zeros on fresh weights: no sparse kernel helps it
    fresh = new_model(d, seed=7)
    dense = dense_row_file(workdir)
    dpath = f"/v1/models/{fresh['id']}/predict"
    hz, dr = [], []
    for _ in range(reps):
        hz.append(run_json([LATENCY, "--port", str(d.port), "--path", "/healthz",
                            "--n", str(n_lat)], env))
        dr.append(run_json([LATENCY, "--port", str(d.port), "--path", dpath, "--body", dense,
                            "--n", str(n_lat)], env))
    h = min(hz, key=lambda r: r["p50_us"])
    q = min(dr, key=lambda r: r["p50_us"])
    row("dense random row on fresh weights, p50", f"{q['p50_us']:.0f} us",
        f"{h['p50_us']:.0f} us healthz", f"{q['p50_us'] / h['p50_us']:.2f}x", "<= 1.5x")
    lua_dense = os.path.join(workdir, "dense.lua")
    write_lua(lua_dense, dense)
    rh, rd = [], []
    for _ in range(max(2, reps - 1)):
        rh.append(wrk(d, "/healthz", wrk_seconds))
        rd.append(wrk(d, dpath, wrk_seconds, lua_dense))
    rh, rd = max(rh), max(rd)
    row("  the same, wrk -c16, req/s", f"{rd:,.0f}", f"{rh:,.0f} healthz", f"{rd / rh:.2f}x",
        ">= 0.6x")
    dense4 = dense_row_file(workdir, rows=4)
    q4 = min((run_json([LATENCY, "--port", str(d.port), "--path", dpath, "--body", dense4,
                        "--n", str(n_lat)], env) for _ in range(reps)),
             key=lambda r: r["p50_us"])
    row("  4 dense rows a request, p50", f"{q4['p50_us']:.0f} us",
        f"{h['p50_us']:.0f} us healthz", f"{q4['p50_us'] / h['p50_us']:.2f}x", "(extension)")

    # batch: 10,000 rows in one request vs torch forward of the same weights;
    # JSON and float32 requests take turns on one kept-alive connection
    n = 10000
    batch = json.dumps({"instances": xte[:n].tolist()}).encode()
    batch_bin = xte[:n].astype("<f4").tobytes()
    conn = d.conn()
    t_b, t_bb = [], []
    for _ in range(max(reps, 3)):
        t0 = time.perf_counter()
        st, res = d.request("POST", path, batch, conn=conn, raw=True)
        t_b.append(time.perf_counter() - t0)
        check(st, res, (200,))
        t0 = time.perf_counter()
        conn.request("POST", path, body=batch_bin,
                     headers={"Content-Type": "application/octet-stream",
                              "Accept": "application/octet-stream"})
        r = conn.getresponse()
        res_bin = r.read()
        t_bb.append(time.perf_counter() - t0)
        check(r.status, res_bin, (200,))
    json_reply = len(res)
    res = json.loads(res)
    conn.close()
    if len(res["predictions"]) != n:
        raise RuntimeError("batch predict returned the wrong number of rows")
    probs = np.frombuffer(res_bin, "<f4").reshape(n, -1)
    if not np.array_equal(probs, np.array([p["probabilities"] for p in res["predictions"]],
                                          np.float32)):
        raise RuntimeError("float32 batch predictions differ from the JSON ones")
    weights = check(*d.request("GET", f"/v1/models/{model['id']}/weights"))
    wfile = os.path.join(workdir, "weights.json")
    with open(wfile, "w") as f:
        json.dump(weights, f)
    code = ("import sys, json, gzip, time, numpy as np, torch\n"
            "torch.set_num_threads(int(sys.argv[3]))\n"
            "w = json.load(open(sys.argv[1]))\n"
            "layers = []\n"
            "for l in w['layers']:\n"
            "    if l['type'] != 'dense': continue\n"
            "    W = torch.tensor(l['weight']); lin = torch.nn.Linear(W.shape[1], W.shape[0])\n"
            "    with torch.no_grad():\n"
            "        lin.weight.copy_(W); lin.bias.copy_(torch.tensor(l['bias']))\n"
            "    layers += [lin, torch.nn.ReLU()]\n"
            "model = torch.nn.Sequential(*layers[:-1]).eval()\n"
            "sd = w.get('standardize')\n"
            "mu = torch.tensor(sd['mean']) if sd else 0.0\n"
            "std = torch.tensor(sd['std']) if sd else 1.0\n"
            "x = np.frombuffer(gzip.open(sys.argv[2]).read(), np.uint8, offset=16)\n"
            "X = torch.from_numpy(x.reshape(-1, 784)[:10000].astype(np.float32))\n"
            "best = 1e9\n"
            "with torch.no_grad():\n"
            "    for _ in range(int(sys.argv[4])):\n"
            "        t0 = time.perf_counter()\n"
            "        p = torch.softmax(model((X - mu) / std), 1)\n"
            "        best = min(best, time.perf_counter() - t0)\n"
            "print(json.dumps({'seconds': best, 'argmax0': int(p[0].argmax())}))\n")
    threads = str(d.info.get("blas", {}).get("threads", 1))
    out = subprocess.run([PYTHON, "-c", code, wfile,
                          os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"), threads,
                          str(max(reps, 3))], env=env, capture_output=True, text=True,
                         check=True)
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    if peer["argmax0"] != res["predictions"][0]["class"]:
        note(f"warning: class of row 0 differs (nnd {res['predictions'][0]['class']}, "
             f"torch {peer['argmax0']})")
    nr, tr, br = n / min(t_b), n / peer["seconds"], n / min(t_bb)
    row("batch predict 10,000 rows, JSON, rows/s", f"{nr:,.0f}", f"{tr:,.0f} torch",
        f"{nr / tr:.2f}x", ">= 1.0x")
    row("batch predict 10,000 rows, float32, rows/s", f"{br:,.0f}", f"{tr:,.0f} torch",
        f"{br / tr:.2f}x", ">= 1.0x")
    note(f"JSON: {len(batch) / 1e6:.1f} MB request, {json_reply / 1e6:.1f} MB "
         f"reply; float32: {len(batch_bin) / 1e6:.1f} MB request "
         f"(application/octet-stream), {len(res_bin) / 1e6:.1f} MB reply (Accept: "
         f"application/octet-stream); both end to end through the daemon, torch forward on "
         f"{threads} thread(s) with tensors already in memory")
    # the daemon may use both cores for one long body (a parsing thread and a
    # predicting one): show torch on every core too, for the record
    cores = str(os.cpu_count() or 1)
    if cores != threads:
        out = subprocess.run([PYTHON, "-c", code, wfile,
                              os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"), cores,
                              str(max(reps, 3))], env=env, capture_output=True, text=True,
                             check=True)
        tc = n / json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
        note(f"a long body is parsed on one thread and predicted on two; torch forward on "
             f"{cores} threads: {tc:,.0f} rows/s (JSON {nr / tc:.2f}x, float32 {br / tc:.2f}x)")


def main():
    quick = "--quick" in sys.argv
    rows_only = "--rows-only" in sys.argv
    reps = 2 if quick else 3
    train_reps = 2 if quick else 4
    epochs = 2 if quick else 5
    for prog in (NND, ENGINE, LATENCY):
        if not os.access(prog, os.X_OK):
            sys.exit(f"bench/service.py: build first (make all): {prog}")
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    ab_csv = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--ab-csv=")), None)
    if ab_csv:
        fmnist_csv()
        bench_ab_csv(env, ab_csv, int(next((a.split("=", 1)[1] for a in sys.argv
                                            if a.startswith("--rounds=")), "7")))
        return
    for flag, fn in (("--ab-idx=", bench_ab_idx), ("--ab-train=", bench_ab_train)):
        other = next((a.split("=", 1)[1] for a in sys.argv if a.startswith(flag)), None)
        if other:
            fn(env, other, int(next((a.split("=", 1)[1] for a in sys.argv
                                     if a.startswith("--rounds=")), "7")))
            return
    ab = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--ab=")), None)
    if ab:
        rounds = int(next((a.split("=", 1)[1] for a in sys.argv
                           if a.startswith("--rounds=")), "5"))
        workdir = tempfile.mkdtemp(prefix="nnd-bench-work-")
        try:
            bench_ab(env, ab, rounds, 5000, 3, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    os.makedirs(CACHE, exist_ok=True)
    fmnist_csv()  # generated once, outside any timing
    tabular_csv()

    d = Daemon(2, env)
    workdir = tempfile.mkdtemp(prefix="nnd-bench-work-")
    try:
        ct = env.get("OPENBLAS_CORETYPE") or d.coretype()
        if ct:
            env["OPENBLAS_CORETYPE"] = ct
        blas = d.info.get("blas", {})
        if not rows_only:
            row("stage", "nnd", "compared with", "ratio", "target")
            row("-" * 44, "-" * 14, "-" * 14, "-" * 8, "-" * 6)
        note(f"daemon: 2 workers, OpenBLAS core {blas.get('core')} (GET /v1/info) with "
             f"{blas.get('threads')} thread(s) per job; peers under OPENBLAS_CORETYPE="
             f"{ct or 'unset (the same core is detected natively)'}; load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        only = next((a.split("=", 1)[1].split(",") for a in sys.argv
                     if a.startswith("--only=")), None)
        if only and "uploads" not in only:
            ds = upload_idx(d)
        else:
            ds = bench_uploads(d, env, reps)
        if only and "training" not in only:
            model = new_model(d)
        else:
            model = bench_training(d, env, ds, epochs, train_reps)
            bench_blas_threads(env, epochs, d.two_rate)
        if not only or "predict" in only:
            bench_predict(d, env, model, 10000, 3 if quick else 8, reps, workdir)
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
