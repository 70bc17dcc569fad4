#!/usr/bin/env python3
"""fashion_mnist.py - trains and evaluates an MLP on Fashion-MNIST through nnd.

Uploads the IDX files (training and test sets) from the dataset-fashion-mnist
package, creates a 784-256-128-10 ReLU MLP, trains it with standardized inputs
while printing the live loss curve, then predicts the 10,000 test images and
prints the accuracy.

    python3 clients/python/examples/fashion_mnist.py [--server URL] [--epochs N]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nnd_client import Client, NndError  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", help="nnd URL (default $NND_SERVER or http://127.0.0.1:8080)")
    ap.add_argument("--data", default=DATA, help="directory of the IDX .gz files")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.001)
    args = ap.parse_args()
    nnd = Client(args.server)

    def path(name):
        return os.path.join(args.data, name)

    t0 = time.time()
    train = nnd.upload_idx(path("train-images-idx3-ubyte.gz"),
                           path("train-labels-idx1-ubyte.gz"), name="fashion-mnist-train")
    test = nnd.upload_idx(path("t10k-images-idx3-ubyte.gz"),
                          path("t10k-labels-idx1-ubyte.gz"), name="fashion-mnist-test")
    print("uploaded %s (%d rows) and %s (%d rows) in %.1f s"
          % (train["id"], train["rows"], test["id"], test["rows"], time.time() - t0))

    model = nnd.create_model({
        "name": "fmnist-mlp", "task": "classification",
        "inputs": train["features"], "outputs": len(train["classes"]), "seed": 7,
        "layers": [{"type": "dense", "units": 256, "activation": "relu"},
                   {"type": "dense", "units": 128, "activation": "relu"}]})
    print("model %s: %d parameters" % (model["id"], model["parameters"]))

    job = nnd.train(model["id"], train["id"], epochs=args.epochs, batch_size=args.batch_size,
                    standardize=True, seed=1, validation={"fraction": 0.1},
                    optimizer={"type": "adam", "lr": args.lr}, log_every_steps=50)
    t1 = time.time()
    final = None
    for ev in nnd.follow(job["id"]):
        d = ev.data
        if ev.event == "epoch":
            print("epoch %2d/%d  train_loss %.4f  val_loss %s  val_accuracy %s  %.1f s"
                  % (d["epoch"] + 1, args.epochs, d["train_loss"], _fmt(d.get("val_loss")),
                     _fmt(d.get("val_accuracy")), d.get("seconds") or 0))
        elif ev.event == "state":
            final = d
    print("job %s %s in %.1f s" % (job["id"], final["state"], time.time() - t1))
    if final["state"] != "succeeded":
        print("error:", final.get("error"), file=sys.stderr)
        return 1

    rows = _read_idx_images(path("t10k-images-idx3-ubyte.gz"))
    labels = _read_idx_labels(path("t10k-labels-idx1-ubyte.gz"))
    correct = 0
    for i in range(0, len(rows), 1000):
        out = nnd.predict(model["id"], rows[i:i + 1000])
        for p, y in zip(out["predictions"], labels[i:i + 1000]):
            correct += str(train["classes"][p["class"]]) == str(y)
    print("test accuracy: %.4f (%d / %d)" % (correct / len(rows), correct, len(rows)))
    return 0


def _fmt(v):
    return "-" if v is None else "%.4f" % v


def _open(p):
    import gzip
    return gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")


def _read_idx_images(p):
    import struct
    with _open(p) as f:
        _, n, h, w = struct.unpack(">IIII", f.read(16))
        raw = f.read(n * h * w)
    k = h * w
    return [list(raw[i * k:(i + 1) * k]) for i in range(n)]


def _read_idx_labels(p):
    import struct
    with _open(p) as f:
        _, n = struct.unpack(">II", f.read(8))
        return list(f.read(n))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NndError as e:
        print("nnd:", e, file=sys.stderr)
        sys.exit(1)
