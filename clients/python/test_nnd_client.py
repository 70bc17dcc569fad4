"""test_nnd_client - tests of nnd_client.py against a real daemon.

Each test class starts its own bin/nnd (from $NND_BIN, default <repo>/bin) on an
ephemeral loopback port with a temporary data directory, and stops it at the end.
Run: python3 -m unittest -v test_nnd_client  (from clients/python), or
tests/clients/run-python.sh.
"""

import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from nnd_client import Client, NndError, TERMINAL_STATES, _parse_sse  # noqa: E402


def nnd_binary():
    b = os.environ.get("NND_BIN", "bin")
    if not os.path.isabs(b):
        b = os.path.join(ROOT, b)
    return os.path.join(b, "nnd")


class Daemon:
    """A bin/nnd on 127.0.0.1:0 with a temporary data directory; stderr goes to a
    file whose first line gives the bound address."""

    def __init__(self, api_key=None):
        self.dir = tempfile.mkdtemp(prefix="nnd-pytest-")
        self.log_path = os.path.join(self.dir, "stderr.log")
        env = dict(os.environ)
        env.pop("NND_API_KEY", None)
        if api_key:
            env["NND_API_KEY"] = api_key
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [nnd_binary(), "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data"),
             "--workers", "2"],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.url = None
        deadline = time.time() + 20
        while time.time() < deadline and self.url is None:
            if self.proc.poll() is not None:
                break
            with open(self.log_path, "rb") as f:
                first = f.readline().decode("utf-8", "replace")
            if first.endswith("\n") and first.startswith("listening on "):
                self.url = "http://" + first.split()[2]
                break
            time.sleep(0.05)
        if self.url is None:
            self.stop()
            raise RuntimeError("nnd did not start; stderr:\n" + self.stderr())
        c = Client(self.url, api_key=api_key or "")
        deadline = time.time() + 20
        while time.time() < deadline and not c.ready():
            time.sleep(0.05)

    def stderr(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# A tiny separable problem: class "pos" when x0 + x1 > 0, else "neg".
SEP_POINTS = [(2.0, 1.5), (1.0, 2.5), (3.0, 0.5), (1.5, 1.0), (2.5, 2.0), (0.5, 3.0),
              (-2.0, -1.5), (-1.0, -2.5), (-3.0, -0.5), (-1.5, -1.0), (-2.5, -2.0),
              (-0.5, -3.0)]


def sep_csv():
    lines = ["x0,x1,label"]
    for a, b in SEP_POINTS:
        lines.append("%g,%g,%s" % (a, b, "pos" if a + b > 0 else "neg"))
    return ("\n".join(lines) + "\n").encode()


def idx_bytes(images, labels, h, w):
    """An IDX3 image file and an IDX1 label file (big-endian dims)."""
    img = struct.pack(">BBBBIII", 0, 0, 8, 3, len(images), h, w) + bytes(
        v for im in images for v in im)
    lab = struct.pack(">BBBBI", 0, 0, 8, 1, len(labels)) + bytes(labels)
    return img, lab


def list_of(reply):
    """The array member of a list reply ({"<things>": [...], "total": n})."""
    arrays = [v for k, v in reply.items() if isinstance(v, list)]
    assert len(arrays) == 1, reply
    return arrays[0]


class ClientTest(unittest.TestCase):
    """The client against an open (keyless) daemon."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon()
        cls.nnd = Client(cls.daemon.url, api_key="")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def sep_model(self, ds):
        return self.nnd.create_model({
            "name": "sep", "task": "classification", "inputs": ds["features"],
            "outputs": len(ds["classes"]), "seed": 3,
            "layers": [{"type": "dense", "units": 8, "activation": "tanh"}]})

    def test_health_and_info_answer(self):
        self.assertEqual(self.nnd.health(), {"status": "ok"})
        self.assertTrue(self.nnd.ready())
        info = self.nnd.info()
        self.assertIn("version", info)
        self.assertEqual(info["workers"], 2)

    def test_csv_upload_reports_shape_and_sorted_classes(self):
        ds = self.nnd.upload_csv(sep_csv(), name="sep", label="label")
        self.assertRegex(ds["id"], r"^ds_[0-9a-f]{16}$")
        self.assertEqual(ds["name"], "sep")
        self.assertEqual(ds["rows"], 12)
        self.assertEqual(ds["features"], 2)
        self.assertEqual(ds["task"], "classification")
        self.assertEqual(ds["classes"], ["neg", "pos"])
        self.assertEqual(ds["feature_names"], ["x0", "x1"])
        self.assertEqual(self.nnd.get_dataset(ds["id"])["rows"], 12)
        ids = [d["id"] for d in list_of(self.nnd.list_datasets(limit=1000))]
        self.assertIn(ds["id"], ids)

    def test_classes_and_rows_back(self):
        ds = self.nnd.upload_csv(sep_csv(), classes=["pos", "neg", "none"])
        self.assertEqual(ds["classes"], ["pos", "neg", "none"])
        rows = self.nnd.dataset_rows(ds["id"], offset=6, limit=2)
        self.assertEqual(rows["y"], [1, 1])
        self.assertEqual(rows["x"], [[-2, -1.5], [-1, -2.5]])
        self.assertEqual(rows["feature_names"], ["x0", "x1"])
        self.assertEqual(self.nnd.dataset_rows(ds["id"], limit=1, csv=True), "x0,x1,label\n2,1.5,pos\n")
        # integer labels are class indices; names may be given for them
        arr = self.nnd.upload_arrays([[0], [1], [2]], [0, 2, 2], classes=["a", "b", "c"])
        self.assertEqual(arr["classes"], ["a", "b", "c"])
        self.assertEqual(self.nnd.upload_arrays([[0], [1]], [0, 3])["outputs"], 4)
        with self.assertRaises(NndError) as cm:
            self.nnd.upload_csv(sep_csv(), classes=["pos"])
        self.assertEqual(cm.exception.status, 400)
        with self.assertRaises(NndError) as cm:
            self.nnd.dataset_rows("ds_0000000000000000")
        self.assertEqual(cm.exception.status, 404)

    def test_csv_from_file_path(self):
        path = os.path.join(self.daemon.dir, "sep.csv")
        with open(path, "wb") as f:
            f.write(sep_csv())
        ds = self.nnd.upload_csv(path)
        self.assertEqual(ds["rows"], 12)
        self.assertEqual(ds["classes"], ["neg", "pos"])

    def test_separable_csv_is_learned_and_predicted(self):
        ds = self.nnd.upload_csv(sep_csv(), name="sep")
        model = self.sep_model(ds)
        self.assertRegex(model["id"], r"^mdl_[0-9a-f]{16}$")
        self.assertEqual(model["version"], 0)
        self.assertEqual(model["parameters"], 2 * 8 + 8 + 8 * 2 + 2)
        job = self.nnd.train(model["id"], ds["id"], epochs=60, batch_size=4, seed=1,
                             standardize=True, log_every_steps=1,
                             optimizer={"type": "adam", "lr": 0.05})
        self.assertRegex(job["id"], r"^job_[0-9a-f]{16}$")
        self.assertIn(job["state"], ("queued", "running"))
        final = self.nnd.wait(job["id"])
        self.assertEqual(final["state"], "succeeded", final)
        out = self.nnd.predict(model["id"], [[2, 2], [-2, -2], [1, 0.5], [-0.5, -1]])
        self.assertGreaterEqual(out["model_version"], 1)
        labels = [p["label"] for p in out["predictions"]]
        self.assertEqual(labels, ["pos", "neg", "pos", "neg"])
        for p in out["predictions"]:
            self.assertEqual(len(p["probabilities"]), 2)
            self.assertAlmostEqual(sum(p["probabilities"]), 1.0, places=4)
            self.assertEqual(p["class"], ["neg", "pos"].index(p["label"]))
        m = self.nnd.get_model(model["id"])
        self.assertEqual(m["trained_by"], job["id"])
        self.assertEqual(m["classes"], ["neg", "pos"])

    def test_raw_records_as_dicts_with_text_and_holes(self):
        # a text column and a hole: the model takes records by column name
        lines = ["x0,side,label"]
        for a, b in SEP_POINTS:
            lines.append("%g,%s,%s" % (a, "up" if b > 0 else "down", "pos" if a + b > 0 else "neg"))
        lines.append(",up,pos")
        ds = self.nnd.upload_csv(("\n".join(lines) + "\n").encode())
        self.assertEqual([c["type"] for c in ds["columns"]], ["numeric", "categorical"])
        self.assertEqual(ds["feature_names"], ["x0", "x0:missing", "side=down", "side=up"])
        model = self.sep_model(ds)
        job = self.nnd.train(model["id"], ds["id"], epochs=60, batch_size=4, seed=1,
                             optimizer={"type": "adam", "lr": 0.05})
        self.assertEqual(self.nnd.wait(job["id"])["state"], "succeeded")
        out = self.nnd.predict(model["id"], [{"x0": 3, "side": "up"},
                                             {"x0": -3, "side": "down", "extra": 1},
                                             {"x0": float("nan"), "side": "sideways"}])
        self.assertEqual([p["label"] for p in out["predictions"][:2]], ["pos", "neg"])
        self.assertEqual([(w["row"], w["column"]) for w in out["warnings"]],
                         [(1, "extra"), (2, "side")])
        one = self.nnd.predict(model["id"], {"x0": 3, "side": "up"})
        self.assertEqual(len(one["predictions"]), 1)
        self.assertEqual(self.nnd.get_model(model["id"])["columns"][1]["levels"],
                         ["down", "up"])

    def test_replicas_and_shards_give_the_same_weights(self):
        ds = self.nnd.upload_csv(sep_csv())
        weights = []
        for replicas in (1, 2):
            model = self.sep_model(ds)
            job = self.nnd.train(model["id"], ds["id"], epochs=5, batch_size=8, seed=1,
                                 replicas=replicas, shards=2)
            final = self.nnd.wait(job["id"])
            self.assertEqual(final["state"], "succeeded", final)
            self.assertEqual(final["config"]["shards"], 2)
            self.assertEqual(final["placement"], ["thread %d" % i for i in range(replicas)])
            weights.append(self.nnd.get_weights(model["id"]))
        self.assertEqual(weights[0], weights[1])

    def test_follow_yields_steps_then_terminal_state(self):
        ds = self.nnd.upload_csv(sep_csv())
        model = self.sep_model(ds)
        job = self.nnd.train(model["id"], ds["id"], epochs=5, batch_size=4,
                             log_every_steps=1, shuffle=False)
        events = list(self.nnd.follow(job["id"]))
        kinds = [e.event for e in events]
        self.assertGreaterEqual(kinds.count("step"), 2, kinds)
        self.assertEqual(kinds.count("epoch"), 5, kinds)
        self.assertEqual(kinds[-1], "state")
        self.assertEqual(events[-1].data["state"], "succeeded")
        steps = [e for e in events if e.event == "step"]
        self.assertEqual(steps[0].data["step"], int(steps[0].id))
        self.assertEqual([s.data["step"] for s in steps],
                         sorted(s.data["step"] for s in steps))
        self.assertEqual(steps[-1].data["step"], 15)  # 3 batches x 5 epochs
        # A late subscriber resuming after step 10 gets only what follows it.
        later = [e for e in self.nnd.follow(job["id"], last_event_id=10) if e.event == "step"]
        self.assertEqual([e.data["step"] for e in later], [11, 12, 13, 14, 15])
        metrics = self.nnd.job_metrics(job["id"])
        self.assertEqual(len(metrics["epochs"]), 5)
        self.assertEqual(len(metrics["steps"]), 15)
        since = self.nnd.job_metrics(job["id"], since_step=12)
        self.assertEqual([s["step"] for s in since["steps"]], [13, 14, 15])

    def test_arrays_regression_fits_a_line(self):
        xs = [[i / 10.0] for i in range(-20, 21)]
        ys = [2.0 * x[0] + 1.0 for x in xs]
        ds = self.nnd.upload_arrays(xs, ys, name="line", task="regression")
        self.assertEqual(ds["task"], "regression")
        self.assertEqual(ds["rows"], 41)
        self.assertEqual(ds["outputs"], 1)
        model = self.nnd.create_model(task="regression", inputs=1, outputs=1, layers=[])
        job = self.nnd.train(model["id"], ds["id"], epochs=300, batch_size=41, shuffle=False,
                             standardize=False, optimizer={"type": "sgd", "lr": 0.3})
        self.assertEqual(self.nnd.wait(job["id"])["state"], "succeeded")
        pred = self.nnd.predict(model["id"], [[0.0], [1.0], [-1.5]])["predictions"]
        for got, want in zip(pred, [1.0, 3.0, -2.0]):
            self.assertAlmostEqual(got[0], want, places=2)
        w = self.nnd.get_weights(model["id"])
        self.assertAlmostEqual(w["layers"][-1]["weight"][0][0], 2.0, places=2)
        self.assertAlmostEqual(w["layers"][-1]["bias"][0], 1.0, places=2)

    def test_weights_round_trip_and_shape_mismatch(self):
        model = self.nnd.create_model(task="regression", inputs=2, outputs=1,
                                      layers=[{"type": "dense", "units": 3}])
        w = self.nnd.get_weights(model["id"])
        self.assertEqual(len(w["layers"]), 2)
        self.assertEqual([len(r) for r in w["layers"][0]["weight"]], [2, 2, 2])
        w["layers"][0]["weight"] = [[1, 0], [0, 1], [1, 1]]
        w["layers"][0]["bias"] = [0, 0, 0]
        w["layers"][1]["weight"] = [[1, 2, 3]]
        w["layers"][1]["bias"] = [0.5]
        self.nnd.put_weights(model["id"], w)
        self.assertEqual(self.nnd.get_model(model["id"])["version"], 1)
        got = self.nnd.predict(model["id"], [[1, 2]])
        self.assertEqual(got["model_version"], 1)
        # hidden = (1, 2, 3) -> 1 + 4 + 9 + 0.5
        self.assertAlmostEqual(got["predictions"][0][0], 14.5, places=4)
        w["layers"][1]["weight"] = [[1, 2]]
        with self.assertRaises(NndError) as cm:
            self.nnd.put_weights(model["id"], w)
        self.assertEqual(cm.exception.status, 422)

    def test_onnx_export_import_round_trip(self):
        model = self.nnd.create_model(task="classification", inputs=2, outputs=3, seed=4,
                                      layers=[{"type": "dense", "units": 5, "activation": "gelu"},
                                              {"type": "batch_norm"}])
        data = self.nnd.export_onnx(model["id"], opset=17)
        self.assertEqual(data[:2], b"\x08\x08")      # ir_version 8 for opset 17
        self.assertIn(b"probabilities", data)
        path = os.path.join(self.daemon.dir, "m.onnx")
        self.assertEqual(self.nnd.export_onnx(model["id"], path, opset=17), path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)
        back = self.nnd.import_onnx(path, name="again", classes=["a", "b", "c"])
        self.assertEqual(back["name"], "again")
        self.assertEqual(back["classes"], ["a", "b", "c"])
        self.assertEqual(back["version"], 1)
        self.assertEqual(back["parameters"], model["parameters"])
        rows = [[0.5, -1.0], [2.0, 3.0]]
        want = self.nnd.predict(model["id"], rows)["predictions"]
        got = self.nnd.predict(back["id"], rows)["predictions"]
        for w, g in zip(want, got):
            for a, b in zip(w["probabilities"], g["probabilities"]):
                self.assertAlmostEqual(a, b, places=6)
        self.assertEqual(got[1]["label"], "abc"[got[1]["class"]])
        self.assertEqual(self.nnd.export_onnx(back["id"], opset=17), data)
        with self.assertRaises(NndError) as cm:
            self.nnd.import_onnx(b"not an onnx file")
        self.assertEqual(cm.exception.status, 400)
        self.assertEqual(cm.exception.code, "malformed_onnx")
        with self.assertRaises(NndError) as cm:
            self.nnd.export_onnx(model["id"], opset=99)
        self.assertEqual(cm.exception.status, 422)
        self.assertEqual(cm.exception.errors[0]["field"], "opset")

    def test_idx_pair_upload_records_image(self):
        images = [[(i * 7 + j) % 256 for j in range(12)] for i in range(10)]
        labels = [i % 3 for i in range(10)]
        img, lab = idx_bytes(images, labels, 3, 4)
        ds = self.nnd.upload_idx(gzip.compress(img), lab, name="tiny-idx")
        self.assertEqual(ds["rows"], 10)
        self.assertEqual(ds["features"], 12)
        self.assertEqual(ds["image"], {"width": 4, "height": 3, "channels": 1})
        self.assertEqual(ds["task"], "classification")
        self.assertEqual(len(ds["classes"]), 3)

    def test_validation_error_carries_problem_fields(self):
        with self.assertRaises(NndError) as cm:
            self.nnd.create_model(task="classification", inputs=2, outputs=2,
                                  layers=[{"type": "dense", "units": 4},
                                          {"type": "dense", "units": -1}])
        e = cm.exception
        self.assertEqual(e.status, 422)
        self.assertEqual(e.code, "validation_failed")
        self.assertTrue(e.title)
        self.assertIn("layers[1].units", [f["field"] for f in e.errors])

    def test_unknown_ids_raise_404(self):
        for call in (lambda: self.nnd.get_dataset("ds_0000000000000000"),
                     lambda: self.nnd.get_model("mdl_0123456789abcdef"),
                     lambda: self.nnd.get_job("job_ffffffffffffffff"),
                     lambda: self.nnd.get_model("../etc/passwd")):
            with self.assertRaises(NndError) as cm:
                call()
            self.assertEqual(cm.exception.status, 404)
            self.assertTrue(cm.exception.code)

    def test_malformed_csv_names_line(self):
        with self.assertRaises(NndError) as cm:
            self.nnd.upload_csv(b"a,b\n1,2\n3,x,4\n")
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("3", cm.exception.detail)

    def test_delete_then_gone(self):
        ds = self.nnd.upload_csv(sep_csv())
        model = self.sep_model(ds)
        self.nnd.delete_model(model["id"])
        self.nnd.delete_dataset(ds["id"])
        with self.assertRaises(NndError) as cm:
            self.nnd.get_dataset(ds["id"])
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(NndError) as cm:
            self.nnd.get_model(model["id"])
        self.assertEqual(cm.exception.status, 404)

    def test_cancel_running_job_then_409(self):
        xs = [[(i % 17) / 17.0, (i % 5) / 5.0] for i in range(2000)]
        ys = [i % 2 for i in range(2000)]
        ds = self.nnd.upload_arrays(xs, ys, task="classification")
        model = self.nnd.create_model(task="classification", inputs=2, outputs=2,
                                      layers=[{"type": "dense", "units": 64,
                                               "activation": "relu"}])
        job = self.nnd.train(model["id"], ds["id"], epochs=100000, batch_size=1,
                             log_every_steps=1)
        seen = []
        for ev in self.nnd.follow(job["id"]):
            seen.append(ev)
            if ev.event == "step" and len(seen) == 3:
                self.nnd.cancel_job(job["id"])
        self.assertEqual(seen[-1].event, "state")
        self.assertEqual(seen[-1].data["state"], "cancelled")
        self.assertEqual(self.nnd.get_job(job["id"])["state"], "cancelled")
        with self.assertRaises(NndError) as cm:
            self.nnd.cancel_job(job["id"])
        self.assertEqual(cm.exception.status, 409)
        states = [j["state"] for j in list_of(self.nnd.list_jobs(state="cancelled"))]
        self.assertTrue(states and all(s == "cancelled" for s in states), states)


class StudyTest(unittest.TestCase):
    """Generated data sets and a study through the client."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon()
        cls.nnd = Client(cls.daemon.url, api_key="")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def test_generated_set_echoes_its_generator_and_theory(self):
        ds = self.nnd.generate_dataset("additive", name="a", inputs=4, rows=200)
        self.assertEqual(ds["rows"], 200)
        self.assertEqual(ds["generator"]["smoothness"], 2)
        self.assertAlmostEqual(ds["theory"]["rate_exponent"], -0.8)
        with self.assertRaises(NndError) as cm:
            self.nnd.generate_dataset("linear", smoothness=1)
        self.assertEqual(cm.exception.status, 422)
        self.assertEqual(cm.exception.errors[0]["field"], "generator.smoothness")

    def test_create_follow_and_rank_a_grid_study(self):
        ds = self.nnd.generate_dataset("additive", inputs=3, rows=300)
        st = self.nnd.create_study(
            dataset=ds["id"], validation={"fraction": 0.2},
            objective={"metric": "val_loss"},
            model={"layers": [{"type": "dense", "units": 8, "activation": "relu"}]},
            job={"epochs": 3, "optimizer": {"type": "adam", "lr": 0.01}},
            space={"job.batch_size": [16, 64]}, strategy={"type": "grid"})
        self.assertEqual(st["trials"]["total"], 2)
        kinds = [ev.event for ev in self.nnd.follow_study(st["id"])]
        self.assertIn("trial", kinds)
        self.assertEqual(kinds[-1], "state")
        final = self.nnd.get_study(st["id"])
        self.assertEqual(final["state"], "succeeded")
        board = self.nnd.study_trials(st["id"])
        values = [t["value"] for t in board["trials"]]
        self.assertEqual(values, sorted(values))
        self.assertEqual(final["best"]["trial"], board["trials"][0]["number"])
        by_number = self.nnd.study_trials(st["id"], sort="number")
        self.assertEqual([t["number"] for t in by_number["trials"]], [0, 1])
        self.assertEqual(by_number["trials"][1]["params"], {"job.batch_size": 64})
        with self.assertRaises(NndError) as cm:
            self.nnd.cancel_study(st["id"])
        self.assertEqual(cm.exception.status, 409)
        self.nnd.delete_study(st["id"])
        with self.assertRaises(NndError) as cm:
            self.nnd.get_study(st["id"])
        self.assertEqual(cm.exception.status, 404)


class AuthTest(unittest.TestCase):
    """The client against a daemon started with an API key."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(api_key="s3cret-key")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def test_missing_or_wrong_key_is_401_and_right_key_works(self):
        for key in ("", "wrong"):
            with self.assertRaises(NndError) as cm:
                Client(self.daemon.url, api_key=key).info()
            self.assertEqual(cm.exception.status, 401)
        self.assertIn("version", Client(self.daemon.url, api_key="s3cret-key").info())
        self.assertEqual(Client(self.daemon.url, api_key="").health(), {"status": "ok"})

    def test_key_and_server_from_environment(self):
        old = {k: os.environ.get(k) for k in ("NND_API_KEY", "NND_SERVER")}
        try:
            os.environ["NND_API_KEY"] = "s3cret-key"
            os.environ["NND_SERVER"] = self.daemon.url
            c = Client()
            self.assertEqual(c.server, self.daemon.url)
            self.assertIn("workers", c.info())
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class OfflineTest(unittest.TestCase):
    """Pieces that need no daemon."""

    def test_follow_resumes_a_broken_stream_with_last_event_id(self):
        mock = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "clients", "sse_mock.py")],
                                stdout=subprocess.PIPE)
        try:
            url = "http://127.0.0.1:%d" % int(mock.stdout.readline())
            c = Client(url, api_key="")
            evs = list(c.follow("job_1"))
            self.assertEqual([e.data["step"] for e in evs if e.event == "step"], [1, 2, 3, 4])
            self.assertEqual(evs[-1].event, "state")
            self.assertEqual(evs[-1].data["state"], "succeeded")
            self.assertEqual(evs[1].data, {"step": 1, "epoch": 0, "loss": 1, "lr": 0.1})
            seen = c.request("GET", "/last-event-id")
            self.assertEqual(seen, {"last": "2", "connections": 2})
            with self.assertRaises(NndError) as cm:
                list(c.follow("job_2"))
            self.assertEqual((cm.exception.status, cm.exception.detail), (404, "no such job"))
        finally:
            mock.kill()
            mock.wait()
            mock.stdout.close()

    def test_sse_parser_follows_the_event_stream_rules(self):
        import io
        raw = (b": comment\n"
               b"event: step\nid: 4\ndata: {\"step\": 4,\n"
               b"data: \"loss\": 0.5}\n\n"
               b"data:plain\r\n\r\n"
               b"event: state\ndata: {\"state\": \"succeeded\"}\n\n"
               b"event: partial\ndata: 1")
        evs = list(_parse_sse(io.BytesIO(raw)))
        self.assertEqual([e.event for e in evs], ["step", "message", "state"])
        self.assertEqual(evs[0].data, {"step": 4, "loss": 0.5})
        self.assertEqual(evs[0].id, "4")
        self.assertEqual(evs[1].data, "plain")
        self.assertEqual(evs[1].id, "4")  # the last event id persists
        self.assertIn("succeeded", TERMINAL_STATES)

    def test_error_from_problem_json(self):
        e = NndError.from_reply(422, "Unprocessable", b'{"type": "/errors/validation_failed",'
                                b'"title": "Unprocessable Content", "status": 422,'
                                b'"detail": "bad", "code": "validation_failed",'
                                b'"errors": [{"field": "epochs", "message": "must be > 0"}]}')
        self.assertEqual((e.status, e.code, e.detail), (422, "validation_failed", "bad"))
        self.assertEqual(e.errors[0]["field"], "epochs")
        self.assertIn("epochs: must be > 0", str(e))
        e = NndError.from_reply(502, "Bad Gateway", b"<html>oops</html>")
        self.assertEqual((e.status, e.code, e.title), (502, "", "Bad Gateway"))

    def test_server_url_is_checked(self):
        with self.assertRaises(ValueError):
            Client("ftp://example")
        self.assertEqual(Client("http://h:1/").server, "http://h:1")


if __name__ == "__main__":
    unittest.main()
