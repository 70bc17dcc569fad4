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

  bench/dp.py [--rounds N] [--epochs N]
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    env = dict(os.environ)
    d = Daemon(2, env)
    try:
        ct = d.coretype()
        if ct:
            env["OPENBLAS_CORETYPE"] = ct
        from nnd_client import Client
        ds = Client("http://127.0.0.1:%d" % d.port).upload_idx(
            F + "train-images-idx3-ubyte.gz", F + "train-labels-idx1-ubyte.gz",
            name="fmnist")["id"]
        print("bench/dp.py: nnd with 2 workers, OpenBLAS core %s; %d rounds, %d epoch(s) each"
              % (d.info["blas"].get("core"), a.rounds, a.epochs), flush=True)
        for hidden, batch in (([256, 128], 128), ([1024, 1024], 512)):
            r1, r2, t1, t2, same = [], [], [], [], True
            for _ in range(a.rounds):
                s1, w1 = nnd_run(d, ds, hidden, batch, a.epochs, 1, 2)
                s2, w2 = nnd_run(d, ds, hidden, batch, a.epochs, 2, 2)
                same = same and w1 == w2
                r1.append(s1)
                r2.append(s2)
                t1.append(torch_run(hidden, batch, 1, 1, env))
                t2.append(torch_run(hidden, batch, 1, 2, env))
            name = "784-%s-10 batch %d" % ("-".join(map(str, hidden)), batch)
            best_t = [max(x, y) for x, y in zip(t1, t2)]
            print("  %s: replicas 1 %.0f, replicas 2 %.0f samples/s (shards 2); torch 1 thread "
                  "%.0f, 2 threads %.0f" % (name, statistics.median(r1), statistics.median(r2),
                                             statistics.median(t1), statistics.median(t2)))
            print("    replicas 2 / replicas 1: %.2fx (rounds %s); weights equal: %s"
                  % (statistics.median(r2) / statistics.median(r1),
                     spread([y / x for x, y in zip(r1, r2)]), same))
            print("    replicas 2 / torch best: %.2fx (rounds %s)"
                  % (statistics.median(r2) / statistics.median(best_t),
                     spread([y / x for x, y in zip(best_t, r2)])))
            # the communication model of nnd --mpi (server/ranks.c): an
            # allgather of the shards' gradients per step, every rank then
            # folding them in shard order, (S - S/R) x 4 x params bytes
            # received per rank (S shards on R ranks; here S = R = 2);
            # 10 Gbit/s = 1.25e9 B/s, 50 us latency per message.
            # bench/dp_mpi.py measures it under mpirun.
            n = params(hidden)
            step2 = batch / statistics.median(r2)
            step1 = batch / statistics.median(r1)
            R = 2
            S = 2
            bytes_ = (S - S / R) * 4 * n
            comm = bytes_ / 1.25e9 + 2 * 50e-6
            print("    per step: %.0f parameters, compute %.2f ms on 1 replica, %.2f ms on 2; "
                  "MPI over 10 Gbit/s: %.2f MB received per rank, %.2f ms -> 2 hosts %.2fx of 1"
                  % (n, step1 * 1e3, step2 * 1e3, bytes_ / 1e6, comm * 1e3,
                     step1 / (step1 / 2 + comm)), flush=True)
    finally:
        d.stop()


if __name__ == "__main__":
    main()
