#!/usr/bin/python3
"""bench/dp.py - data-parallel training (job fields replicas and shards) in a
real bin/nnd with two workers, against PyTorch at its best thread count.

Rows, each a ratio of medians measured in this run (rounds alternate the
sides, so a busy machine slows both alike; the spread is the min..max of
the per-round ratios):
  - Fashion-MNIST MLP 784-256-128-10, batch 128, Adam 1e-3: replicas 2 vs
    replicas 1 at shards 2 (the same weights, bit for bit), and replicas 2
    vs torch_mlp.py (../shared/peers) with 1 and 2 threads, the faster;
  - the wide MLP 784-1024-1024-10, batch 512: the same two ratios.
Throughput is the job's last epoch's samples_per_second (training steps
only, as the engine reports it). The communication model for MPI across
hosts is printed from the parameter count (bytes per step) and the
measured step times; see the README's "Data-parallel training".

  bench/dp.py [--rounds N] [--epochs N] [--bin NND] [--against OLD_NND]
              [--models all|small|wide] [--no-torch]
--against runs a second binary in the same rounds (A/B: alternating, the
ratio new/old per round), e.g. a build of main kept aside.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from service import Daemon  # noqa: E402

SHARED = os.environ.get("NND_SHARED", os.path.join(ROOT, "..", "shared"))
F = "/usr/share/datasets/fashion-mnist/"


def params(hidden):
    n, w = 0, 784
    for h in hidden + [10]:
        n += w * h + h
        w = h
    return n


def nnd_run(d, ds, hidden, batch, epochs, replicas, shards):
    spec = {"name": "dp", "task": "classification", "inputs": 784, "outputs": 10, "seed": 7,
            "layers": [{"type": "dense", "units": h, "activation": "relu"} for h in hidden]}
    st, m = d.request("POST", "/v1/models", spec)
    assert st == 201, m
    job = {"model": m["id"], "dataset": ds, "epochs": epochs, "batch_size": batch, "seed": 1,
           "optimizer": {"type": "adam", "lr": 0.001}, "standardize": True,
           "checkpoint_every_epochs": 0, "replicas": replicas, "shards": shards}
    st, j = d.request("POST", "/v1/jobs", job)
    assert st == 202, j
    c = d.conn()
    c.request("GET", "/v1/jobs/%s/events?format=ndjson" % j["id"])
    r = c.getresponse()
    last = None
    for line in r:
        ev = json.loads(line)
        if ev["event"] == "epoch":
            last = ev["data"]
    c.close()
    st, j = d.request("GET", "/v1/jobs/" + j["id"])
    assert j["state"] == "succeeded", j
    st, w = d.request("GET", "/v1/models/%s/weights" % m["id"], raw=True)
    return last["samples_per_second"], w


def torch_run(hidden, batch, epochs, threads, env):
    out = subprocess.run(["/usr/bin/python3", os.path.join(SHARED, "peers", "torch_mlp.py"),
                          "--hidden", ",".join(map(str, hidden)), "--batch", str(batch),
                          "--epochs", str(epochs), "--threads", str(threads)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]


def spread(xs):
    return "%.2f..%.2f" % (min(xs), max(xs))


def comm_model(n, step1, step2):
    """The communication model of nnd --mpi (server/ranks.c): an allgather
    of the shards' gradients per step, every rank then folding them in shard
    order, (S - S/R) x 4 x params bytes received per rank (S shards on R
    ranks; here S = R = 2); 10 Gbit/s = 1.25e9 B/s, 50 us latency per
    message. bench/dp_mpi.py measures it under mpirun."""
    R = 2
    S = 2
    bytes_ = (S - S / R) * 4 * n
    comm = bytes_ / 1.25e9 + 2 * 50e-6
    return ("    per step: %.0f parameters, compute %.2f ms on 1 replica, %.2f ms on 2; "
            "MPI over 10 Gbit/s: %.2f MB received per rank, %.2f ms -> 2 hosts %.2fx of 1"
            % (n, step1 * 1e3, step2 * 1e3, bytes_ / 1e6, comm * 1e3,
               step1 / (step1 / 2 + comm)))


def med(xs):
    return statistics.median(xs)


def ratios(num, den):
    return [y / x for x, y in zip(den, num)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--bin", default=None, help="the nnd to measure (default bin/nnd)")
    p.add_argument("--against", default=None,
                   help="A/B: another nnd (e.g. a build of main) run in the same rounds, "
                        "alternating with --bin")
    p.add_argument("--models", choices=("all", "small", "wide"), default="all")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    a = p.parse_args()
    env = dict(os.environ)
    sides = [("new", a.bin)] + ([("old", a.against)] if a.against else [])
    ds = {}
    daemons = {}
    try:
        for name, binary in sides:
            d = Daemon(2, env, binary=binary)
            daemons[name] = d
            ct = d.coretype()
            if ct:
                env["OPENBLAS_CORETYPE"] = ct
            from nnd_client import Client
            ds[name] = Client("http://127.0.0.1:%d" % d.port).upload_idx(
                F + "train-images-idx3-ubyte.gz", F + "train-labels-idx1-ubyte.gz",
                name="fmnist")["id"]
        d = daemons["new"]
        print("bench/dp.py: nnd with 2 workers, OpenBLAS core %s; %d rounds, %d epoch(s) each; "
              "load average %s" % (d.info["blas"].get("core"), a.rounds, a.epochs,
                                   " ".join(open("/proc/loadavg").read().split()[:3])),
              flush=True)
        if a.against:
            print("  A/B: new %s, old %s (alternating in each round)"
                  % (a.bin or "bin/nnd", a.against))
        models = [([256, 128], 128), ([1024, 1024], 512)]
        if a.models == "small":
            models = models[:1]
        elif a.models == "wide":
            models = models[1:]
        for hidden, batch in models:
            r1 = {k: [] for k, _ in sides}
            r2 = {k: [] for k, _ in sides}
            t1, t2 = [], []
            same = {k: True for k, _ in sides}
            weights = {}
            for rnd in range(a.rounds):
                # alternate which side goes first, so drift hits both alike
                order = sides if rnd % 2 == 0 else sides[::-1]
                for name, _ in order:
                    dd = daemons[name]
                    s1, w1 = nnd_run(dd, ds[name], hidden, batch, a.epochs, 1, 2)
                    s2, w2 = nnd_run(dd, ds[name], hidden, batch, a.epochs, 2, 2)
                    weights.setdefault(name, w1)
                    same[name] = same[name] and w1 == w2 == weights[name]
                    r1[name].append(s1)
                    r2[name].append(s2)
                if not a.no_torch:
                    t1.append(torch_run(hidden, batch, 1, 1, env))
                    t2.append(torch_run(hidden, batch, 1, 2, env))
            name = "784-%s-10 batch %d" % ("-".join(map(str, hidden)), batch)
            for side, _ in sides:
                x1, x2 = r1[side], r2[side]
                tag = (side + ": ") if a.against else ""
                line = ("  %s%s: replicas 1 %.0f, replicas 2 %.0f samples/s (shards 2)"
                        % (tag, name, med(x1), med(x2)))
                if t1:
                    line += "; torch 1 thread %.0f, 2 threads %.0f" % (med(t1), med(t2))
                print(line)
                print("    replicas 2 / replicas 1: %.2fx (rounds %s); per round r1 %s, r2 %s"
                      % (med(x2) / med(x1), spread(ratios(x2, x1)),
                         " ".join("%.0f" % v for v in x1), " ".join("%.0f" % v for v in x2)))
                if t1:
                    best_t = [max(x, y) for x, y in zip(t1, t2)]
                    print("    replicas 2 / torch best: %.2fx (rounds %s)"
                          % (med(x2) / med(best_t), spread(ratios(x2, best_t))))
                print(comm_model(params(hidden), batch / med(x1), batch / med(x2)), flush=True)
            print("    weights equal (replicas 1 and 2, every round): %s%s"
                  % (" ".join("%s %s" % (k, v) for k, v in same.items()) if a.against
                     else same["new"],
                     "; new == old: %s" % (weights["new"] == weights["old"]) if a.against
                     else ""))
            if a.against:
                print("    new / old: replicas 2 %.2fx (rounds %s), replicas 1 %.2fx (rounds %s)"
                      % (med(r2["new"]) / med(r2["old"]), spread(ratios(r2["new"], r2["old"])),
                         med(r1["new"]) / med(r1["old"]), spread(ratios(r1["new"], r1["old"]))),
                      flush=True)
        print("  load average at the end: %s"
              % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        for d in daemons.values():
            d.stop()


if __name__ == "__main__":
    main()
