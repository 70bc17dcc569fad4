#!/usr/bin/python3
"""onnx_suite.py - ONNX export and import against the real runtimes.

Run by tests/onnx/run-onnx.sh with a daemon at $NND (and a second one with a
small --max-body at $NND_SMALL). Needs Debian's python3-onnx, python3-torch
and python3-numpy, and node with tools/node_modules/onnxruntime-node.

1. nnd models of every layer type and activation, trained briefly (so batch
   norm has published statistics and the inputs a standardization), export at
   opsets 13 and 17 (15 for some); onnx.checker.check_model(full_check=True)
   accepts every file; ONNX Runtime's outputs on 1,000 random rows equal
   /predict's within 1e-5 (absolute for probabilities; for regression outputs
   relative, |a - b| / max(|b|, 1)); export, import, export gives the same
   bytes, and the imported model predicts like the original.
2. torch.onnx.export of nn.Sequential MLPs (every activation, batch norm,
   residual blocks with and without projection, dropout, Flatten of a 3-D
   input, a standardization module, a Mul scale, a final Softmax) imports and
   predicts like torch within 1e-5; GET /weights shows torch's weights.
3. Refusals: an unknown operator is a 422 naming the node and operator, a
   file that is not ONNX a 400, a file over --max-body a 413; none leaves a
   model behind.
Prints one line per check and the agreement figures per layer type; exits 1
when a check failed.
"""
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import onnx
import torch
from torch import nn

NND = os.environ["NND"]
NND_SMALL = os.environ.get("NND_SMALL")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP = tempfile.mkdtemp(prefix="nnd-onnx-")
TOL = 1e-5
ROWS = 1000
failures = 0
figures = []   # (what, kind, max error)


def check(name, cond, detail=""):
    global failures
    if cond:
        print("ok   " + name)
    else:
        failures += 1
        print("FAIL " + name + (("\n     " + detail) if detail else ""))


def call(method, path, body=None, ctype=None, accept=None, base=None):
    """(status, headers, body bytes)"""
    req = urllib.request.Request((base or NND) + path, data=body, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def jcall(method, path, doc=None, base=None):
    body = json.dumps(doc).encode() if doc is not None else None
    st, _, b = call(method, path, body, "application/json" if body else None, base=base)
    return st, (json.loads(b) if b else None)


def predict(mid, x):
    """/predict with float32 rows in and out."""
    st, h, b = call("POST", "/v1/models/%s/predict" % mid, x.astype("<f4").tobytes(),
                    "application/octet-stream", "application/octet-stream")
    assert st == 200, (st, b[:300])
    return np.frombuffer(b, dtype="<f4").reshape(x.shape[0], -1)


def err_of(got, want, regression):
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if regression:
        d = d / np.maximum(np.abs(want.astype(np.float64)), 1.0)
    return float(d.max()) if d.size else 0.0


def import_onnx(data, query=""):
    return call("POST", "/v1/models?format=onnx" + query, data, "application/octet-stream")


def model_count(base=None):
    return jcall("GET", "/v1/models?limit=1", base=base)[1]["total"]


# ---------------------------------------------------------------- 1. nnd models

def dense(units, act=None, **kw):
    d = {"type": "dense", "units": units}
    if act:
        d["activation"] = act
    d.update(kw)
    return d


ACTS = ["identity", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu"]
SPECS = []
for i, a in enumerate(ACTS):
    SPECS.append(("activation " + a, "classification" if i % 2 == 0 else "regression",
                  [dense(12, a), {"type": "activation", "function": a}, dense(9)]))
SPECS += [
    ("dense without bias", "regression", [dense(10, "tanh", bias=False), dense(7, "relu")]),
    ("leaky_relu alpha 0.2", "classification",
     [dense(10, "leaky_relu", alpha=0.2), {"type": "activation", "function": "elu", "alpha": 0.5}]),
    ("batch_norm", "classification",
     [dense(12, "relu"), {"type": "batch_norm"}, dense(10, "tanh"),
      {"type": "batch_norm", "eps": 0.001}]),
    ("batch_norm", "regression", [{"type": "batch_norm"}, dense(10, "gelu"), {"type": "batch_norm"}]),
    ("dropout inverted", "classification", [dense(12, "relu"), {"type": "dropout", "rate": 0.3}]),
    ("dropout scale_at_test", "regression",
     [dense(12, "relu"), {"type": "dropout", "rate": 0.3, "mode": "scale_at_test"}]),
    ("residual", "classification",
     [dense(8, "relu"), {"type": "residual", "layers": [dense(8, "relu"), dense(8)]}]),
    ("residual projection", "regression",
     [dense(8, "relu"), {"type": "residual", "projection": True,
                         "layers": [dense(5, "gelu"), {"type": "batch_norm"}]}]),
    ("residual nested", "classification",
     [dense(8, "elu"), {"type": "residual", "layers": [
         dense(8, "tanh"), {"type": "residual", "layers": [dense(8, "softplus")]},
         {"type": "dropout", "rate": 0.2, "mode": "scale_at_test"}]}]),
    ("output layer only", "regression", []),
]


def upload_data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(240, 6)) * np.arange(1, 7) + np.arange(6)
    yc = (x[:, 0] + x[:, 1] * 0.5 > 2).astype(int) + (x[:, 2] > 2).astype(int)
    yr = np.stack([x[:, 0] * 0.3 + np.sin(x[:, 1]), x[:, 2] * x[:, 3] * 0.05], axis=1)
    st, c = jcall("POST", "/v1/datasets", {"name": "c", "x": x.round(4).tolist(), "y": yc.tolist()})
    assert st == 201, c
    st, r = jcall("POST", "/v1/datasets", {"name": "r", "task": "regression",
                                           "x": x.round(4).tolist(), "y": yr.round(4).tolist()})
    assert st == 201, r
    return c["id"], r["id"]


def train_all(ds_c, ds_r):
    models = []
    for name, task, layers in SPECS:
        st, m = jcall("POST", "/v1/models", {
            "name": name, "task": task, "inputs": 6, "outputs": 3 if task == "classification" else 2,
            "seed": len(models) + 1, "layers": layers})
        assert st == 201, m
        st, j = jcall("POST", "/v1/jobs", {
            "model": m["id"], "dataset": ds_c if task == "classification" else ds_r, "epochs": 3,
            "batch_size": 16, "seed": 1, "standardize": True,
            "optimizer": {"type": "adam", "lr": 0.01}})
        assert st == 202, j
        models.append((name, task, m["id"], j["id"]))
    for _, _, _, jid in models:
        for _ in range(600):
            st, j = jcall("GET", "/v1/jobs/" + jid)
            if j["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        assert j["state"] == "succeeded", j
    return models


def run_ort(manifest):
    mf = os.path.join(TMP, "manifest.json")
    with open(mf, "w") as f:
        json.dump(manifest, f)
    subprocess.run(["node", os.path.join(ROOT, "tests", "onnx", "ort_run.js"), mf], check=True,
                   stdout=subprocess.DEVNULL)


def nnd_models():
    ds_c, ds_r = upload_data()
    models = train_all(ds_c, ds_r)
    rng = np.random.default_rng(11)
    x = (rng.normal(size=(ROWS, 6)) * 3 + 1).astype(np.float32)
    xf = os.path.join(TMP, "x.f32")
    x.astype("<f4").tofile(xf)
    manifest, cases = [], []
    for k, (name, task, mid, _) in enumerate(models):
        want = predict(mid, x)
        opsets = (13, 17) if k % 3 else (13, 15, 17)
        for opset in opsets:
            st, h, data = call("GET", "/v1/models/%s/export?format=onnx&opset=%d" % (mid, opset))
            check("export %s opset %d: 200 application/octet-stream" % (name, opset),
                  st == 200 and h["Content-Type"] == "application/octet-stream" and
                  "filename=" in (h["Content-Disposition"] or ""), str(st))
            st2, _, again = call("GET", "/v1/models/%s/export?opset=%d" % (mid, opset))
            check("export %s opset %d: the same bytes twice" % (name, opset), data == again)
            path = os.path.join(TMP, "m%d_%d.onnx" % (k, opset))
            with open(path, "wb") as f:
                f.write(data)
            try:
                m = onnx.load_from_string(data)
                onnx.checker.check_model(m, full_check=True)
                ok, why = m.opset_import[0].version == opset, "opset %d" % m.opset_import[0].version
            except Exception as e:  # the checker's refusal is the failure
                ok, why = False, str(e)[:300]
            check("onnx.checker full_check accepts %s opset %d" % (name, opset), ok, why)
            out = path + ".out"
            manifest.append({"model": path, "input": xf, "rows": ROWS, "cols": 6, "output": out})
            cases.append((name, task, mid, opset, data, out, want))
            # round trip: import, export again
            q = "&task=%s&name=rt" % task
            st, _, b = import_onnx(data, q)
            ok = st == 201
            check("import of %s opset %d: 201" % (name, opset), ok, b[:300].decode(errors="replace"))
            if ok:
                back = json.loads(b)["id"]
                st, _, data2 = call("GET", "/v1/models/%s/export?opset=%d" % (back, opset))
                check("export, import, export of %s opset %d gives the same bytes" % (name, opset),
                      data2 == data, "%d vs %d bytes" % (len(data2), len(data)))
                e = err_of(predict(back, x), want, task == "regression")
                check("the imported %s predicts like the original (%.2g)" % (name, e), e <= TOL)
    run_ort(manifest)
    for name, task, mid, opset, data, out, want in cases:
        got = np.fromfile(out, dtype="<f4").reshape(want.shape)
        e = err_of(got, want, task == "regression")
        figures.append(("nnd->ORT " + name + " opset %d" % opset, task, e))
        check("ONNX Runtime runs %s opset %d like /predict (%.2g)" % (name, opset, e), e <= TOL)


def tabular_columns():
    """A model trained on tabular columns exports its encoding as nnd.columns."""
    rows = ["size,color,weight,label"]
    for i in range(60):
        color = ["red", "green", "blue", ""][i % 4]
        w = "" if i % 7 == 0 else str(1 + (i * 37 % 11) * 0.5)
        rows.append("%d,%s,%s,%s" % (i % 9, color, w, "yes" if (i % 9) + (i % 4) > 5 else "no"))
    st, _, b = call("POST", "/v1/datasets?name=tab&label=label", ("\n".join(rows) + "\n").encode(),
                    "text/csv")
    check("tabular CSV upload: 201", st == 201, b[:300].decode(errors="replace"))
    if st != 201:
        return
    ds = json.loads(b)
    st, m = jcall("POST", "/v1/models", {"task": "classification", "inputs": ds["features"],
                                         "outputs": 2, "layers": [dense(6, "relu")]})
    st, j = jcall("POST", "/v1/jobs", {"model": m["id"], "dataset": ds["id"], "epochs": 2,
                                       "standardize": True})
    for _ in range(600):
        st, j = jcall("GET", "/v1/jobs/" + j["id"])
        if j["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    st, model = jcall("GET", "/v1/models/" + m["id"])
    st, _, data = call("GET", "/v1/models/%s/export?format=onnx" % m["id"])
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    cols = json.loads(meta.get("nnd.columns", "null"))
    check("a tabular model exports its columns as metadata nnd.columns",
          "columns" in model and cols == model["columns"], str(meta)[:300])


# ---------------------------------------------------------------- 2. torch models

class Residual(nn.Module):
    def __init__(self, *layers, proj=None):
        super().__init__()
        self.f = nn.Sequential(*layers)
        self.proj = proj

    def forward(self, x):
        return (self.proj(x) if self.proj is not None else x) + self.f(x)


class Standardize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.std


class Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x * self.c


def torch_models():
    torch.manual_seed(3)
    acts = {"Relu": nn.ReLU(), "LeakyRelu": nn.LeakyReLU(0.1), "Elu": nn.ELU(),
            "Sigmoid": nn.Sigmoid(), "Tanh": nn.Tanh(), "Softplus": nn.Softplus(),
            "Gelu (Erf)": nn.GELU()}
    ms = []
    for k, (n, a) in enumerate(acts.items()):
        ms.append(("torch " + n, "classification" if k % 2 else "regression", (6,),
                   nn.Sequential(nn.Linear(6, 16), a, nn.Linear(16, 3))))
    ms += [
        ("torch batch norm", "classification", (6,),
         nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4),
                       nn.Softmax(dim=1))),
        ("torch residual", "regression", (6,),
         nn.Sequential(nn.Linear(6, 12), nn.Tanh(),
                       Residual(nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 12)),
                       nn.Linear(12, 2))),
        ("torch residual projection", "classification", (6,),
         nn.Sequential(Residual(nn.Linear(6, 10), nn.GELU(), proj=nn.Linear(6, 10, bias=False)),
                       nn.BatchNorm1d(10), nn.Linear(10, 3))),
        ("torch dropout, flatten, standardize, scale", "regression", (2, 3),
         nn.Sequential(nn.Flatten(), Standardize([1, 2, 3, 4, 5, 6], [2, 1, 0.5, 3, 1, 1]),
                       nn.Linear(6, 10), nn.ReLU(), nn.Dropout(0.3), Scale(0.7),
                       nn.Linear(10, 1))),
    ]
    ms.append(("torch untrained batch norm (shared initializers)", "classification", (4,),
               nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.BatchNorm1d(32), nn.Linear(32, 3))))
    for name, task, shape, model in ms[:-1]:
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm1d):   # published-like statistics
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return ms


def torch_import():
    rng = np.random.default_rng(5)
    for name, task, shape, model in torch_models():
        model.eval()
        for opset in (13, 17):
            f = io.BytesIO()
            torch.onnx.export(model, torch.zeros((1,) + shape), f, opset_version=opset,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
            data = f.getvalue()
            before = model_count()
            st, _, b = import_onnx(data, "&task=%s&name=t" % task)
            check("%s opset %d imports: 201" % (name, opset), st == 201,
                  b[:400].decode(errors="replace"))
            if st != 201:
                continue
            mid = json.loads(b)["id"]
            check("%s opset %d: one model more" % (name, opset), model_count() == before + 1)
            x = (rng.normal(size=(ROWS,) + shape) * 2).astype(np.float32)
            with torch.no_grad():
                want = model(torch.from_numpy(x)).numpy()
            if task == "classification" and not isinstance(model[-1], nn.Softmax):
                want = torch.softmax(torch.from_numpy(want), dim=1).numpy()
            got = predict(mid, x.reshape(ROWS, -1))
            e = err_of(got, want, task == "regression")
            figures.append(("torch->nnd " + name[6:] + " opset %d" % opset, task, e))
            check("%s opset %d predicts like torch (%.2g)" % (name, opset, e), e <= TOL)
            st, w = jcall("GET", "/v1/models/%s/weights" % mid)
            lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
            first = w["layers"][0]
            while first["type"] != "dense":
                first = first["layers"][0] if first["type"] == "residual" else \
                    w["layers"][w["layers"].index(first) + 1]
            check("%s opset %d: GET weights shows torch's first Linear" % (name, opset),
                  st == 200 and w["version"] == 1 and
                  np.array_equal(np.array(first["weight"], dtype=np.float32),
                                 lin[0].weight.detach().numpy()))


# ---------------------------------------------------------------- 3. refusals

def refusals():
    from onnx import helper, TensorProto
    before = model_count()
    node = helper.make_node("Cos", ["x"], ["y"], name="/net/odd")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    st, _, b = import_onnx(data)
    p = json.loads(b)
    check("an unknown operator is a 422 naming node and operator",
          st == 422 and p["code"] == "unsupported_onnx" and "/net/odd" in p["detail"] and
          "Cos" in p["detail"], b[:300].decode(errors="replace"))
    st, _, b = import_onnx(b"\x08\x07this is not an onnx file at all")
    check("a file that is not ONNX is a 400 malformed_onnx",
          st == 400 and json.loads(b)["code"] == "malformed_onnx", b[:300].decode(errors="replace"))
    st, _, b = import_onnx(data, "&task=sideways")
    check("a bad task is a 422 naming task", st == 422 and json.loads(b)["errors"][0]["field"] == "task")
    st, _, b = call("POST", "/v1/models?format=onnx", data, "text/plain")
    check("a model file as text/plain is a 415", st == 415)
    check("refused imports leave no model behind", model_count() == before)
    if NND_SMALL:
        f = io.BytesIO()
        torch.onnx.export(nn.Sequential(nn.Linear(6, 200), nn.ReLU(), nn.Linear(200, 3)).eval(),
                          torch.zeros(1, 6), f, opset_version=13, input_names=["x"])
        n0 = model_count(NND_SMALL)
        st, _, b = call("POST", "/v1/models?format=onnx", f.getvalue(), "application/octet-stream",
                        base=NND_SMALL)
        check("a file over --max-body is a 413", st == 413, "%d %s" % (st, b[:200]))
        check("and leaves no model behind", model_count(NND_SMALL) == n0)


def main():
    nnd_models()
    tabular_columns()
    torch_import()
    refusals()
    print("agreement (max abs error for classification probabilities; "
          "max |a-b|/max(|b|,1) for regression outputs):")
    for what, task, e in figures:
        print("  %-58s %-14s %.3g" % (what, task, e))
    print("%s: %d failed" % ("FAIL" if failures else "PASS", failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
