#!/usr/bin/python3
"""bench/dashboard.py - the dashboard's measures, in headless Chromium
against a real bin/nnd (run from the repository root after `make`):

  latency    time from an epoch's end (its event read off the job's stream
             by this script) to its point drawn on the job page (the page's
             epoch counter changed and a frame was painted): p50 and p95
  weight     the page and its code as transferred (gzip), and inflated
  draw       time to draw 100 runs of 10,000 points each on one chart
             (the page's own chart class, uPlot), median of 5
  load       daemon CPU with 20 job pages open on a training job against
             none, and the training speed (samples/s) in both: a ratio,
             over the same 20 s window of a long job, with every page's
             event stream connected first (each page in a browser context
             of its own: one context keeps at most six connections to a
             host). The browser runs at nice 19, so that what is measured
             is the daemon's own cost of serving the pages, not the cores
             the 20 renderers would take from it on this machine (a
             dashboard normally runs on its user's machine)

Numbers are printed as one JSON line at the end. Timings are this run's,
on this machine; the browser shares the machine's cores with the daemon.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "web"))
import cdp  # noqa: E402
from browser_test import Api, ring_csv  # noqa: E402


def start_daemon(tmp):
    p = subprocess.Popen([os.path.join(ROOT, "bin", "nnd"), "--listen", "127.0.0.1:0",
                          "--data-dir", os.path.join(tmp, "data"), "--workers", "1",
                          "--log-level", "error"],
                         stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    base = "http://" + line.split("listening on ")[1].strip()
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/readyz")
            break
        except Exception:
            time.sleep(0.05)
    threading.Thread(target=lambda: p.stderr.read(), daemon=True).start()
    return p, base


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def connections(port):
    """Established TCP connections to the daemon's port (its clients)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                        n += 1
        except OSError:
            pass
    return n


def job_doc(model, ds, epochs, batch):
    return {"model": model, "dataset": ds, "epochs": epochs, "batch_size": batch, "seed": 1,
            "standardize": True, "log_every_steps": 100, "validation": {"fraction": 0.2},
            "optimizer": {"type": "adam", "lr": 0.0005}}


def wide_model(api, seed):
    return api.post("/v1/models", {"task": "classification", "inputs": 2, "outputs": 2,
                                   "seed": seed,
                                   "layers": [{"type": "dense", "units": 256, "activation": "relu"},
                                              {"type": "dense", "units": 256, "activation": "relu"}]})["id"]


# ---------------------------------------------------------------- latency

def bench_latency(b, api, base, ds, epochs=40):
    job = api.post("/v1/jobs", job_doc(wide_model(api, 1), ds, epochs, 4))["id"]
    arrived = {}

    def read():
        r = urllib.request.urlopen(base + "/v1/jobs/%s/events" % job, timeout=300)
        name = None
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "epoch":
                arrived[json.loads(line[6:])["epoch"]] = time.time()
    t = threading.Thread(target=read, daemon=True)
    t.start()
    b.navigate(base + "/ui/jobs/" + job)
    b.wait("!!document.querySelector('#epochs-seen')")
    # each change of the page's epoch counter, stamped after the next paint
    b.eval("""(() => { window.__drawn = {};
      const el = document.querySelector('#epochs-seen');
      new MutationObserver(() => { const e = parseInt(el.textContent.replace(/\\D+/g, ''), 10);
        /* epochs that arrived together share their paint */
        requestAnimationFrame(() => { const t = Date.now();
          for (let k = e; k >= 0 && !(k in window.__drawn); k--) window.__drawn[k] = t; });
      }).observe(el, { childList: true, characterData: true, subtree: true }); })()""")
    api.wait_state(job, timeout=600)
    b.pump(0.5)
    drawn = b.eval("window.__drawn")
    lat = sorted((drawn[str(e)] / 1000.0 - t0) * 1000 for e, t0 in arrived.items()
                 if str(e) in drawn and e > 0)
    return {"epochs": len(lat), "p50_ms": round(statistics.median(lat), 1),
            "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 1), "max_ms": round(lat[-1], 1)}


# ---------------------------------------------------------------- weight

def bench_weight(b, base):
    b.requests.clear()
    sizes = {}
    b.events = []
    b.navigate(base + "/ui/")
    b.pump(1.0)
    ids = {r["requestId"]: r["request"]["url"] for r in b.requests}
    for m, p in b.events:
        if m == "Network.loadingFinished" and p["requestId"] in ids:
            u = ids[p["requestId"]]
            if "/ui/" in u:
                sizes[u.rsplit("/", 1)[-1] or "index.html"] = p["encodedDataLength"]
    plain = 0
    for name in ("", "app.js", "app.css"):
        with urllib.request.urlopen(base + "/ui/" + name) as f:
            plain += len(f.read())
    return {"transferred_bytes": sum(sizes.values()), "files": sizes, "inflated_bytes": plain}


# ---------------------------------------------------------------- draw

def tree_cpu_seconds(root):
    """CPU seconds (user + system) of root and every process below it."""
    parent, cpu = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d)] = int(parts[1])
        cpu[int(d)] = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in cpu:
        q = pid
        while q in parent and q != root and q > 1:
            q = parent[q]
        if q == root:
            total += cpu[pid]
    return total


def bench_draw(b, base, runs=100, points=10000, reps=5):
    """Wall time in the page, and the CPU time of every browser process
    (the machine may be shared: CPU time is what the drawing costs)."""
    b.navigate(base + "/ui/compare")
    b.eval("""(() => {
      const x = Array.from({length: %d}, (_, i) => i);
      window.__bench = [x, Array.from({length: %d}, (_, k) => x.map(i => Math.exp(-i / 2000) * (1 + k / 100) + Math.sin(i / 7 + k) * 0.02))];
      return 1; })()""" % (points, runs), timeout=300)
    wall, cpu = [], []
    for _ in range(reps):
        c0 = tree_cpu_seconds(b.proc.pid)
        t = b.eval("""(async () => {
          const [x, ys] = window.__bench;
          const host = document.createElement('div');
          document.querySelector('main').append(host);
          await new Promise(r => setTimeout(r, 0));
          const t0 = performance.now();
          const c = new window.nnd.Chart(host, { title: 'bench', names: ys.map((_, k) => 'run ' + k), height: 400 });
          c.set(x, ys);
          await new Promise(r => setTimeout(r, 0));   /* uPlot draws in a microtask */
          const t = performance.now() - t0;
          c.u.destroy(); host.remove(); window.nnd.charts.delete(c);
          return t; })()""", timeout=300)
        cpu.append((tree_cpu_seconds(b.proc.pid) - c0) * 1000)
        wall.append(t)
    return {"runs": runs, "points_per_run": points, "wall_median_ms": round(statistics.median(wall), 1),
            "wall_ms": [round(t, 1) for t in wall],
            "browser_cpu_median_ms": round(statistics.median(cpu), 1),
            "browser_cpu_ms": [round(t, 1) for t in cpu]}


# ---------------------------------------------------------------- load

def thread_cpu(pid):
    """CPU seconds of the daemon's threads: (training threads, named
    nnd-train by the daemon, and every other: HTTP, event feeds, store)."""
    train = other = 0.0
    hz = os.sysconf("SC_CLK_TCK")
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                parts = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        c = (int(parts[11]) + int(parts[12])) / hz
        if comm.startswith("nnd-train"):
            train += c
        else:
            other += c
    return train, other


def measure(api, pid, job, seconds, port):
    """The daemon's CPU and the job's speed over a fixed window while the
    job runs: CPU seconds per wall second, the median samples/s of the
    epochs that ended in the window, the most client connections seen."""
    path = "/v1/jobs/%s/metrics" % job
    e0 = len(api.get(path)["epochs"])
    c0, t0, most = cpu_seconds(pid), time.time(), 0
    tr0, ot0 = thread_cpu(pid)
    while time.time() - t0 < seconds:
        most = max(most, connections(port))
        time.sleep(0.2)
    c1, t1 = cpu_seconds(pid), time.time()
    tr1, ot1 = thread_cpu(pid)
    eps = api.get(path)["epochs"][e0:]
    state = api.get("/v1/jobs/" + job)["state"]
    samples = sum(e.get("samples", 0) or 0 for e in eps)
    return {"cpu_s": round(c1 - c0, 2), "wall_s": round(t1 - t0, 2),
            "cpu_cores": round((c1 - c0) / (t1 - t0), 3), "epochs": len(eps),
            "serving_cpu_s": round(ot1 - ot0, 3), "training_cpu_s": round(tr1 - tr0, 2),
            "epochs_per_training_cpu_s": round(len(eps) / (tr1 - tr0), 2) if tr1 > tr0 else None,
            "samples_per_s": round(statistics.median(e["samples_per_second"] for e in eps)) if eps else None,
            "connections_most": most, "still_running": state == "running"}


def long_job(api, ds, seed, epochs):
    job = api.post("/v1/jobs", job_doc(wide_model(api, seed), ds, epochs, 4))["id"]
    api.wait_state(job, states=("running", "succeeded", "failed", "cancelled"), timeout=120)
    return job


def open_pages(b, base, job, pages, port, timeout=180):
    """pages job pages, each in a browser context of its own (a context has
    its own connection pool: in one, Chromium keeps at most six connections
    to a host and the other pages would wait for a slot); returns when every
    page holds its event stream (a connection each) and the contexts."""
    ctx = []
    for _ in range(pages):
        c = b.browser_call("Target.createBrowserContext")["browserContextId"]
        b.browser_call("Target.createTarget", url=base + "/ui/jobs/" + job, browserContextId=c)
        ctx.append(c)
    end = time.time() + timeout
    while connections(port) < pages and time.time() < end:
        time.sleep(0.5)
    time.sleep(2)          # the pages' first loads done
    return ctx


def bench_load(b, api, base, pid, ds, pages=20, epochs=100000, seconds=20):
    """The daemon's CPU and the training speed over the same window of one
    long job: no page, 20 job pages, no page again (the job is cancelled
    after its window)."""
    port = int(base.rsplit(":", 1)[1])
    runs = {}
    for name, n in (("none", 0), ("with_pages", pages), ("none_after", 0)):
        job = long_job(api, ds, 5 + len(runs), epochs)
        ctx = open_pages(b, base, job, n, port) if n else []
        runs[name] = measure(api, pid, job, seconds, port)
        api.post("/v1/jobs/%s/cancel" % job, {})
        api.wait_state(job, timeout=60)
        for c in ctx:
            b.browser_call("Target.disposeBrowserContext", browserContextId=c)
        print(name, runs[name], flush=True)
    none, wp, none2 = runs["none"], runs["with_pages"], runs["none_after"]
    base_sps = (none["samples_per_s"] + none2["samples_per_s"]) / 2
    base_cpu = (none["cpu_cores"] + none2["cpu_cores"]) / 2
    base_eff = (none["epochs_per_training_cpu_s"] + none2["epochs_per_training_cpu_s"]) / 2
    return {"pages": pages, "window_s": seconds, **runs,
            "daemon_cpu_cores_with_pages": wp["cpu_cores"],
            "daemon_cpu_cores_none": round(base_cpu, 3),
            # what the pages cost the daemon: its non-training threads' CPU
            "serving_cpu_cores_with_pages": round(wp["serving_cpu_s"] / wp["wall_s"], 4),
            "serving_cpu_cores_none": round((none["serving_cpu_s"] / none["wall_s"] +
                                             none2["serving_cpu_s"] / none2["wall_s"]) / 2, 4),
            # wall-clock speed (moves with the machine's load) and training
            # work per training-thread CPU second (does not)
            "training_speed_ratio_with_over_none": round(wp["samples_per_s"] / base_sps, 3),
            "training_cpu_efficiency_ratio_with_over_none":
                round(wp["epochs_per_training_cpu_s"] / base_eff, 3),
            "all_pages_connected": wp["connections_most"] >= pages}


def main():
    tmp = tempfile.mkdtemp(prefix="nnd-bench-dash.")
    p, base = start_daemon(tmp)
    api = Api(base)
    b = cdp.Browser()
    out = {}
    try:
        ds = api.req("POST", "/v1/datasets?name=ring&label=label", ring_csv(2000, 1), "text/csv")["id"]
        if "--load-only" not in sys.argv:
            out["weight"] = bench_weight(b, base)
            print("weight", out["weight"], flush=True)
            out["latency"] = bench_latency(b, api, base, ds)
            print("latency", out["latency"], flush=True)
            out["draw"] = bench_draw(b, base)
            print("draw", out["draw"], flush=True)
        if "--no-load" not in sys.argv:
            b.close()
            b = cdp.Browser(nice=19)
            out["load"] = bench_load(b, api, base, p.pid, ds)
            print("load", out["load"], flush=True)
    finally:
        b.close()
        p.terminate()
        p.wait()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
