#!/usr/bin/python3
"""bench/dp_mpi.py - data-parallel training on MPI ranks (nnd --mpi under
mpirun -np 2 on this machine): the speed-up of 2 processes over 1, and what
the ranks exchange per step against the step's compute.

One daemon, `mpirun -np 2 bin/nnd --mpi`; each round trains the same job
with replicas 1 (one process: rank 0's worker runs both shards) and with
replicas 2 (ranks 0 and 1, one shard each), shards 2 for both, so the
weights are the same bits (checked). Rows, for the Fashion-MNIST MLP
784-256-128-10 at batch 128 and the wide 784-1024-1024-10 at batch 512
(Adam 1e-3):
  - samples/s of each (the job's last epoch, training steps only) and their
    ratio (median of the rounds, the spread min..max of the per-round
    ratios);
  - per step of the 2-rank job, from rank 0's log line (server/ranks.c):
    bytes each rank receives (the allgather of the shards' outputs, the
    whole gradient included), milliseconds inside MPI (allgather and the
    stop broadcast, waiting for the other rank included), and the rest
    (compute);
  - the load average of the machine, at start and end (the ratios mean
    little on a machine busy with other work);
  - on paper, the same bytes between two hosts over 10 Gbit/s Ethernet
    (1.25 GB/s, 50 us per message, 2 messages a step for a model without
    batch norm): the step time and the speed-up of 2 hosts over 1.
No timing is asserted; nothing here runs in make check.

  bench/dp_mpi.py [--rounds N] [--epochs N]
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from service import Daemon  # noqa: E402
from dp import nnd_run, params, spread  # noqa: E402

F = "/usr/share/datasets/fashion-mnist/"
MPI_LINE = re.compile(r"mpi: (\d+) ranks, (\d+) steps: (\d+) bytes received per step and rank, "
                      r"([\d.]+) ms of ([\d.]+) ms per step in MPI.*?; ([\d.]+) ms in its "
                      r"shards' passes, ([\d.]+) ms copying")


def last_mpi_line(d):
    d.log.flush()
    with open(d.log.name) as f:
        found = [m.groups() for m in map(MPI_LINE.search, f) if m]
    assert found, "no mpi line in the daemon's log"
    ranks, steps, b, comm, wall, passes, copy = found[-1]
    return int(b), float(comm), float(wall), float(passes), float(copy)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    if not shutil.which("mpirun"):
        print("SKIP: mpirun is not installed (openmpi-bin)")
        return 77
    # not bound to a core each (another program busy on one core would
    # halve that rank), and a rank waiting in MPI yields its core
    prefix = ["mpirun", "--allow-run-as-root", "--mca", "btl_base_warn_component_unused", "0",
              "--bind-to", "none", "--mca", "mpi_yield_when_idle", "1", "-np", "2"]
    d = Daemon(2, dict(os.environ), prefix=prefix, extra=["--mpi"], log_level="info",
               stop_signal=signal.SIGUSR1)
    try:
        from nnd_client import Client
        ds = Client("http://127.0.0.1:%d" % d.port).upload_idx(
            F + "train-images-idx3-ubyte.gz", F + "train-labels-idx1-ubyte.gz",
            name="fmnist")["id"]
        print("bench/dp_mpi.py: mpirun -np 2 nnd --mpi, OpenBLAS core %s (every rank checked "
              "the same at start); %d rounds, %d epoch(s) each; load average %.1f on %d cores"
              % (d.info["blas"].get("core"), a.rounds, a.epochs, os.getloadavg()[0],
                 os.cpu_count()), flush=True)
        for hidden, batch in (([256, 128], 128), ([1024, 1024], 512)):
            r1, r2, per, same = [], [], [], True
            for _ in range(a.rounds):
                s1, w1 = nnd_run(d, ds, hidden, batch, a.epochs, 1, 2)
                s2, w2 = nnd_run(d, ds, hidden, batch, a.epochs, 2, 2)
                same = same and w1 == w2
                r1.append(s1)
                r2.append(s2)
                per.append(last_mpi_line(d))
            name = "784-%s-10 batch %d" % ("-".join(map(str, hidden)), batch)
            m1, m2 = statistics.median(r1), statistics.median(r2)
            print("  %s: 1 process %.0f, 2 processes %.0f samples/s (shards 2)" % (name, m1, m2))
            print("    2 processes / 1: %.2fx (rounds %s); weights equal: %s"
                  % (m2 / m1, spread([y / x for x, y in zip(r1, r2)]), same))
            b = statistics.median([x[0] for x in per])
            comm = statistics.median([x[1] for x in per])
            wall = statistics.median([x[2] for x in per])
            passes = statistics.median([x[3] for x in per])
            copy = statistics.median([x[4] for x in per])
            step1 = batch / m1 * 1e3
            print("    per step on 2 ranks: %.2f MB received per rank, %.3f ms in MPI, %.3f ms "
                  "computing (%.3f ms in all; 1 process: %.3f ms)"
                  % (b / 1e6, comm, wall - comm, wall, step1))
            print("      of which rank 0's shard passes %.3f ms, copying regions %.3f ms, the "
                  "rest (fold, update, callbacks) %.3f ms" % (passes, copy,
                                                               wall - comm - passes - copy))
            # across hosts: the same bytes over 10 Gbit/s, 2 messages a step
            n = params(hidden)
            net = b / 1.25e9 * 1e3 + 2 * 0.05
            two = wall - comm + net
            print("    2 hosts over 10 Gbit/s (on paper): %.0f parameters, %.2f MB a step: "
                  "%.2f ms of network, a step of %.2f ms -> %.2fx of 1 host"
                  % (n, b / 1e6, net, two, step1 / two), flush=True)
        print("  load average at the end: %.1f" % os.getloadavg()[0])
    finally:
        d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
