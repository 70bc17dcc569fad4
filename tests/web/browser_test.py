"""browser_test.py - the dashboard in a real browser (headless Chromium over
its DevTools protocol) against real daemons started by run-web.sh:

  NND_OPEN  a daemon without an API key
  NND_KEYED a daemon with the API key NND_KEY
  SHOTS     where screenshots go (build/web-shots)

It proves: a job's page receives its points live, while the job runs, from
one event stream and no polling; the job list follows states live; the
compare page draws both runs and tells their config differences; the data
set and model pages render; a prediction from the form (tabular) and from
the drawing canvas (images) equals what /predict answers for the same
input; no request leaves the loopback (every other host is unresolvable)
and the page breaks no Content-Security-Policy rule; with an API key the
page asks for it, then works, and no request carries it in a URL.
"""
import gzip
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402

PASS = FAIL = 0


def ok(name, cond, detail=""):
    global PASS, FAIL
    if cond:
        PASS += 1
        print("ok   " + name)
    else:
        FAIL += 1
        print("FAIL " + name + ("\n     " + str(detail) if detail != "" else ""))
    sys.stdout.flush()


class Api:
    def __init__(self, base, key=None):
        self.base, self.key = base, key

    def req(self, method, path, body=None, ctype="application/json"):
        data = None
        hd = {}
        if self.key:
            hd["Authorization"] = "Bearer " + self.key
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hd["Content-Type"] = ctype
        r = urllib.request.Request(self.base + path, data=data, method=method, headers=hd)
        with urllib.request.urlopen(r, timeout=60) as f:
            return json.loads(f.read() or b"null")

    def get(self, path):
        return self.req("GET", path)

    def post(self, path, doc):
        return self.req("POST", path, doc)

    def wait_state(self, job, states=("succeeded", "failed", "cancelled"), timeout=120):
        end = time.time() + timeout
        while True:
            j = self.get("/v1/jobs/" + job)
            if j["state"] in states:
                return j
            if time.time() > end:
                raise AssertionError("job %s stays %s" % (job, j["state"]))
            time.sleep(0.1)


def ring_csv(n, seed):
    import random
    rnd = random.Random(seed)
    lines = ["x0,x1,label"]
    for _ in range(n):
        a, b = rnd.uniform(-3, 3), rnd.uniform(-3, 3)
        lines.append("%.3f,%.3f,%s" % (a, b, "out" if a * a + b * b > 4 else "in"))
    return ("\n".join(lines) + "\n").encode()


def bars_idx(n):
    """n 8x8 images: class 0 a vertical bar, class 1 a horizontal one, as
    gzip-compressed IDX files (images, labels)."""
    imgs, labels = bytearray(), bytearray()
    for i in range(n):
        c, at = i % 2, (i // 2) % 6 + 1
        px = bytearray(64)
        for k in range(8):
            px[(k * 8 + at) if c == 0 else (at * 8 + k)] = 255
        imgs += px
        labels.append(c)
    return (gzip.compress(struct.pack(">IIII", 0x803, n, 8, 8) + bytes(imgs)),
            gzip.compress(struct.pack(">II", 0x801, n) + bytes(labels)))


def multipart(parts):
    b = "nndboundary7d1e"
    out = bytearray()
    for name, data in parts:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (b, name, name)).encode()
        out += data + b"\r\n"
    out += ("--%s--\r\n" % b).encode()
    return bytes(out), "multipart/form-data; boundary=" + b


def setup(api):
    """A tabular data set, two short finished jobs, an image model."""
    ds = api.req("POST", "/v1/datasets?name=ring&label=label", ring_csv(2000, 1), "text/csv")["id"]
    spec = {"name": "ring-mlp", "task": "classification", "inputs": 2, "outputs": 2, "seed": 1,
            "layers": [{"type": "dense", "units": 32, "activation": "relu"},
                       {"type": "dense", "units": 32, "activation": "relu"}]}
    jobs = []
    for lr in (0.01, 0.001):
        m = api.post("/v1/models", spec)["id"]
        jobs.append(api.post("/v1/jobs", {"model": m, "dataset": ds, "epochs": 12, "batch_size": 32,
                                          "seed": 1, "standardize": True,
                                          "validation": {"fraction": 0.2},
                                          "optimizer": {"type": "adam", "lr": lr}})["id"])
    imgs, labels = bars_idx(240)
    body, ct = multipart([("images", imgs), ("labels", labels)])
    ids = api.req("POST", "/v1/datasets?name=bars", body, ct)["id"]
    mi = api.post("/v1/models", {"name": "bars", "task": "classification", "inputs": 64,
                                 "outputs": 2, "seed": 2,
                                 "layers": [{"type": "dense", "units": 16, "activation": "relu"}]})["id"]
    ji = api.post("/v1/jobs", {"model": mi, "dataset": ids, "epochs": 15, "batch_size": 16,
                               "seed": 1, "standardize": True,
                               "optimizer": {"type": "adam", "lr": 0.01}})["id"]
    for j in jobs + [ji]:
        api.wait_state(j)
    return ds, jobs, ids, mi


def shot(b, name):
    path = os.path.join(os.environ.get("SHOTS", "build/web-shots"), name + ".png")
    b.screenshot(path)
    print("     screenshot " + path)


def test_live_job(b, api, base, ds):
    """A job runs while its page watches: points arrive during the run."""
    m = api.post("/v1/models", {"name": "ring-wide", "task": "classification", "inputs": 2,
                                "outputs": 2, "seed": 3,
                                "layers": [{"type": "dense", "units": 256, "activation": "relu"},
                                           {"type": "dense", "units": 256, "activation": "relu"}]})["id"]
    epochs = 30
    job = api.post("/v1/jobs", {"model": m, "dataset": ds, "epochs": epochs, "batch_size": 2,
                                "seed": 1, "standardize": True, "log_every_steps": 50,
                                "validation": {"fraction": 0.2},
                                "optimizer": {"type": "adam", "lr": 0.0005}})["id"]
    b.requests.clear()
    b.navigate(base + "/ui/jobs/" + job)
    b.wait("!!document.querySelector('.jobhead .state')", what="the job page")
    seen_running = set()
    t_end = time.time() + 120
    while time.time() < t_end:
        shown = b.eval("[(document.querySelector('#epochs-seen')||{}).textContent || '',"
                       " window.nnd.charts.size ? [...window.nnd.charts][0].x.length : 0]")
        state = api.get("/v1/jobs/" + job)["state"]
        if state == "running" and shown[1] > 0:
            seen_running.add(shown[1])
        if state in ("succeeded", "failed", "cancelled"):
            break
        b.pump(0.15)
    final = b.wait("(() => { const c = [...window.nnd.charts][0];"
                   " return c.x.length === %d && document.querySelector('.jobhead .state').textContent"
                   " === 'succeeded' ? c.x.length : 0; })()" % epochs, timeout=30,
                   what="all %d epochs drawn and the state succeeded" % epochs)
    ok("the job page drew points while the job ran (%d distinct counts seen while running)"
       % len(seen_running), len(seen_running) >= 3, sorted(seen_running))
    ok("the job page ends with all %d epochs and the final state, without a reload" % epochs,
       final == epochs and sum(1 for r in b.requests if r.get("type") == "Document") == 1)
    urls = [r["request"]["url"] for r in b.requests]
    ok("the points came through one event stream, not by polling",
       sum(1 for u in urls if u.endswith("/v1/jobs/%s/events" % job)) >= 1
       and sum(1 for u in urls if "/metrics" in u) == 1, urls)
    hist = api.get("/v1/jobs/%s/metrics" % job)["epochs"]
    drawn = b.eval("(() => { const c = [...window.nnd.charts][0]; return c.ys[0]; })()")
    ok("the drawn train losses are the job's", [round(v, 6) for v in drawn] ==
       [round(r["train_loss"], 6) for r in hist], (drawn[:3], hist[:3]))
    n_grad = b.eval("[...window.nnd.charts].find(c => c.o.title.startsWith('Gradient')).ys.length")
    ok("a gradient-norm curve per layer (3)", n_grad == 3, n_grad)
    b.eval("window.scrollTo(0, 0)")
    shot(b, "job")
    # the server's own drawing of the same curves, kept beside the screenshots
    with urllib.request.urlopen(base + "/v1/jobs/%s/plot.svg?log_y=true" % job) as f:
        svg = f.read()
    ok("plot.svg of the job is an SVG with two curves",
       svg.startswith(b"<svg ") and svg.count(b"<path ") == 2)
    with open(os.path.join(os.environ.get("SHOTS", "build/web-shots"), "plot.svg"), "wb") as f:
        f.write(svg)
    return job


def test_job_list(b, api, base, ds):
    b.navigate(base + "/ui/")
    b.wait("document.querySelectorAll('#jobs tbody tr[data-job]').length >= 3", what="the job list")
    b.wait("document.querySelector('#live').textContent === 'live'", what="the events stream")
    m = api.post("/v1/models", {"task": "classification", "inputs": 2, "outputs": 2, "seed": 4,
                                "layers": [{"type": "dense", "units": 8, "activation": "tanh"}]})["id"]
    job = api.post("/v1/jobs", {"model": m, "dataset": ds, "epochs": 8, "batch_size": 64,
                                "optimizer": {"type": "adam", "lr": 0.01}})["id"]
    st = b.wait("(() => { const r = document.querySelector('tr[data-job=\"%s\"] .state');"
                " return r && r.textContent === 'succeeded' ? r.textContent : ''; })()" % job,
                what="the new job's row to reach succeeded")
    ok("the job list shows a new job and its states live, without a reload", st == "succeeded")
    shot(b, "jobs")


def test_compare(b, base, jobs):
    b.navigate(base + "/ui/compare?jobs=" + ",".join(jobs))
    rows = b.wait("(() => { const t = document.querySelector('#diff'); return t &&"
                  " [...t.querySelectorAll('tbody tr')].map(r => [...r.children].map(c => c.textContent)); })()",
                  what="the config differences")
    lr = [r for r in rows if r[0] == "job.optimizer.lr"]
    ok("compare: the config table names the differing learning rates",
       lr == [["job.optimizer.lr", "0.01", "0.001"]], rows)
    ok("compare: only differing fields are listed", all(r[1] != r[2] for r in rows), rows)
    series = b.eval("(() => { const c = [...window.nnd.charts][0]; return [c.u.series.length, c.x.length,"
                    " c.ys.map(y => y.filter(v => v != null).length)]; })()")
    ok("compare: one chart with both runs' 12 epochs", series == [3, 12, [12, 12]], series)
    shot(b, "compare")


def api_rows(base, ds, n):
    """The first n rows of a data set as JSON, straight from the daemon."""
    req = urllib.request.Request("%s/v1/datasets/%s/data?limit=%d" % (base, ds, n),
                                 headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def test_datasets(b, base, ds, ids):
    b.navigate(base + "/ui/datasets/" + ds)
    fields = b.wait("(() => { const t = document.querySelectorAll('main table.list tbody tr');"
                    " return t.length ? [...t].map(r => r.children[0].textContent) : null; })()",
                    what="the fields")
    ok("the data set page lists its fields", fields[:2] == ["x0", "x1"], fields)
    classes = b.eval("[...document.querySelectorAll('.tag')].map(t => t.textContent)")
    ok("the data set page lists its classes", classes == ["0: in", "1: out"], classes)
    rows = b.wait("(() => { const s = [...document.querySelectorAll('main section.card')].pop();"
                  " const t = s.querySelectorAll('tbody tr');"
                  " return t.length ? [...t].map(r => [r.children.length, r.lastChild.textContent]) : null; })()",
                  what="the first rows")
    want = api_rows(base, ds, 10)
    ok("the data set page shows its first 10 rows from /data, labels by name",
       rows == [[3, want["classes"][y]] for y in want["y"]], (rows, want["y"]))
    shot(b, "dataset")
    b.navigate(base + "/ui/datasets/" + ids)
    b.wait("!!document.querySelector('main dl')", what="the image data set")
    txt = b.eval("document.querySelector('main').textContent")
    ok("the image data set page shows its shape", "8 × 8 × 1" in txt, txt[:200])
    imgs = b.wait("(() => { const f = document.querySelectorAll('.digits figure');"
                  " return f.length ? [...f].map(x => [x.querySelector('canvas').width,"
                  " x.querySelector('figcaption').textContent]) : null; })()", what="the images")
    want = api_rows(base, ids, 24)
    ok("the image data set page draws its first images with their class names",
       [c for _, c in imgs] == [want["classes"][y] for y in want["y"]] and all(w > 0 for w, _ in imgs),
       (imgs[:4], want["y"][:4]))
    shot(b, "dataset-images")
    b.navigate(base + "/ui/datasets")
    n = b.wait("document.querySelectorAll('main table.list tbody tr').length", what="the list")
    ok("the data set list has both", n == 2, n)


def predict_api(api, model, inst):
    return api.post("/v1/models/%s/predict" % model, {"instances": [inst]})["predictions"][0]


def test_model_tabular(b, api, base, job):
    model = api.get("/v1/jobs/" + job)["model"]
    b.navigate(base + "/ui/models/" + model)
    b.wait("!!document.querySelector('#predict-form input')", what="the prediction form")
    b.eval("(() => { const i = document.querySelectorAll('#predict-form input');"
           " i[0].value = '2.5'; i[1].value = '0.1'; })()")
    x, y = b.eval("(() => { const r = document.querySelector('#predict-form button').getBoundingClientRect();"
                  " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    b.click(x, y)
    label = b.wait("(document.querySelector('#pred-label') || {}).textContent", what="the prediction")
    probs = b.eval("[...document.querySelectorAll('table.probs td.num')].map(t => t.textContent)")
    want = predict_api(api, model, [2.5, 0.1])
    ok("the form's prediction is /predict's (%s)" % label,
       label == want["label"] and len(probs) == 2
       and all(abs(float(a) - w) < 1e-3 for a, w in zip(probs, want["probabilities"])),
       (label, probs, want))
    shot(b, "model")


def test_model_image(b, api, base, model):
    b.navigate(base + "/ui/models/" + model)
    b.wait("!!document.querySelector('#pad')", what="the drawing canvas")
    r = b.eval("(() => { const r = document.querySelector('#pad').getBoundingClientRect(); return [r.x, r.y, r.width]; })()")
    x0, y0, w = r
    # a vertical bar near the middle, top to bottom: class 0 in this data
    b.drag([(x0 + w * 0.5, y0 + w * (0.05 + 0.9 * k / 20)) for k in range(21)])
    bx, by = b.eval("(() => { const r = document.querySelector('#predict-draw').getBoundingClientRect();"
                    " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    b.click(bx, by)
    label = b.wait("(document.querySelector('#pred-label') || {}).textContent", what="the drawing's prediction")
    inst = json.loads(b.eval("document.querySelector('#prediction').dataset.instance"))
    want = predict_api(api, model, inst)
    probs = b.eval("[...document.querySelectorAll('table.probs td.num')].map(t => Number(t.textContent))")
    ok("the drawing became 64 pixels with ink (%d lit)" % sum(1 for v in inst if v > 0),
       len(inst) == 64 and sum(1 for v in inst if v > 0) >= 8 and max(inst) <= 255)
    ok("the drawing's prediction is /predict's for those pixels (%s)" % label,
       label == want["label"] and all(abs(p - q) < 1e-3 for p, q in zip(probs, want["probabilities"])),
       (label, probs, want))
    ok("a vertical stroke is read as the vertical-bar class", label == "0", label)
    shot(b, "model-draw")


def test_studies(b, api, base, ds):
    """A grid study's page fills its leaderboard live; a learning-curve
    study's page draws its curve on log-log axes with the fitted line."""
    try:
        api.get("/v1/studies")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            print("skip the study pages: this daemon has no /v1/studies")
            return
        raise
    base_doc = {"dataset": ds, "validation": {"fraction": 0.2},
                "objective": {"metric": "val_loss", "goal": "minimize"},
                "model": {"task": "classification",
                          "layers": [{"type": "dense", "units": 8, "activation": "tanh"}]},
                "job": {"epochs": 3, "batch_size": 64, "seed": 1,
                        "optimizer": {"type": "adam", "lr": 0.01}}, "seed": 1}
    grid = api.post("/v1/studies", dict(base_doc, name="lr-grid",
                                         space={"job.optimizer.lr": [0.001, 0.01, 0.1]},
                                         strategy={"type": "grid"}))["id"]
    b.navigate(base + "/ui/studies/" + grid)
    b.wait("!!document.querySelector('#study-facts')", what="the study page")
    rows = b.wait("(() => { const r = [...document.querySelectorAll('#leaderboard tbody tr')];"
                  " return r.length === 3 && r.every(x => x.children[2].textContent === 'succeeded')"
                  " ? r.map(x => [x.children[0].textContent, x.children[3].textContent]) : null; })()",
                  timeout=120, what="three succeeded trials on the leaderboard")
    want = api.get("/v1/studies/%s/trials" % grid)["trials"]
    ok("the study leaderboard is the API's, best first, filled live",
       [r[0] for r in rows] == [str(t["number"]) for t in want]
       and all(abs(float(r[1]) - t["value"]) <= 1e-3 * abs(t["value"]) for r, t in zip(rows, want)),
       (rows, want))
    pts = b.wait("(() => { const c = [...window.nnd.charts].find(c => c.o.title.startsWith('objective against'));"
                 " return c && c.x.length === 3 ? c.x : null; })()", what="the objective chart")
    ok("the study draws the objective against the learning rate (log axis)", pts == [0.001, 0.01, 0.1], pts)
    shot(b, "study")
    lc = api.post("/v1/studies", dict(base_doc, name="curve", space={},
                                       strategy={"type": "learning_curve", "rows": [100, 200, 400, 800],
                                                 "repeats": 2}))["id"]
    b.navigate(base + "/ui/studies/" + lc)
    got = b.wait("(() => { const c = [...window.nnd.charts].find(c => c.o.title.startsWith('Learning curve'));"
                 " return c && c.x.length === 4 && c.ys[1].every(v => v > 0) ? [c.x, c.ys.length, c.log, c.o.logX] : null; })()",
                 timeout=180, what="the learning curve with its fit")
    ok("the learning curve is drawn on log-log axes with its fitted line",
       got == [[100, 200, 400, 800], 2, True, True], got)
    b.wait("(() => { const r = [...document.querySelectorAll('#leaderboard tbody tr')];"
           " return r.length === 8 && r.every(x => x.children[2].textContent === 'succeeded'); })()",
           timeout=120, what="the curve study's 8 trials succeeded on the leaderboard")
    shot(b, "study-curve")
    with urllib.request.urlopen(base + "/v1/studies/%s/plot.svg" % lc) as f:
        svg = f.read()
    ok("the study's plot.svg draws the curve and its fit on log-log axes",
       svg.startswith(b"<svg ") and svg.count(b"<path ") == 2 and svg.count(b"(log scale)") == 2,
       svg[:200])
    with open(os.path.join(os.environ.get("SHOTS", "build/web-shots"), "study-plot.svg"), "wb") as f:
        f.write(svg)


def held_study(b, api, base, ds, name, pattern, stage):
    """A learning-curve study whose page loads while a request of the page
    matching pattern is held (the DevTools Fetch domain, at stage) and the
    study is kept queued by a job holding both workers; the blocker is then
    cancelled, the study runs to its end (seen through the API), and only
    then the held requests go on. The page's first look at the study and
    the number of requests held."""
    doc = {"dataset": ds, "validation": {"fraction": 0.2}, "name": name,
           "objective": {"metric": "val_loss", "goal": "minimize"},
           "model": {"task": "classification",
                     "layers": [{"type": "dense", "units": 16, "activation": "tanh"}]},
           "job": {"epochs": 5, "batch_size": 16, "seed": 1,
                   "optimizer": {"type": "adam", "lr": 0.01}}, "seed": 1, "space": {},
           "strategy": {"type": "learning_curve", "rows": [400, 800, 1600], "repeats": 1}}
    m = api.post("/v1/models", {"task": "classification", "inputs": 2, "outputs": 2, "seed": 1,
                                "layers": [{"type": "dense", "units": 8, "activation": "tanh"}]})["id"]
    blocker = api.post("/v1/jobs", {"model": m, "dataset": ds, "epochs": 100000, "batch_size": 16,
                                    "replicas": 2, "optimizer": {"type": "adam", "lr": 0.01}})["id"]
    end = time.time() + 60
    while api.get("/v1/jobs/" + blocker)["state"] != "running":
        assert time.time() < end, "the blocking job did not start"
        time.sleep(0.05)
    sid = api.post("/v1/studies", doc)["id"]
    b.call("Fetch.enable", patterns=[{"urlPattern": pattern.replace("{sid}", sid),
                                      "requestStage": stage}])
    try:
        b.navigate(base + "/ui/studies/" + sid)
        end = time.time() + 30
        while not any(m == "Fetch.requestPaused" for m, _ in b.events):
            assert time.time() < end, "no request of the page was held"
            b.pump(0.05)
        if stage == "Request":   # the study fetched (its answer drawn) before it may run
            b.wait("!!document.querySelector('#study-facts')", what="the study page")
        api.post("/v1/jobs/%s/cancel" % blocker, None)
        end = time.time() + 120
        while api.get("/v1/studies/" + sid)["state"] in ("queued", "running"):
            assert time.time() < end, "the study did not end"
            time.sleep(0.2)
        b.pump(0.5)    # the study's events reach the page meanwhile (when its stream is open)
        held = [p for m, p in b.events if m == "Fetch.requestPaused"]
        for p in held:
            b.call("Fetch.continueRequest", requestId=p["requestId"])
        first = b.wait("document.querySelector('#study-facts') && "
                       "document.querySelector('main .state').textContent", what="the study page")
    finally:
        b.call("Fetch.disable")
    return first, len(held)


def curve_done(b, what):
    return b.wait("(() => { const s = document.querySelector('main .state').textContent;"
                  " const c = [...window.nnd.charts].find(c => c.o.title.startsWith('Learning curve'));"
                  " return s === 'succeeded' && c && c.x.length === 3 ? [s, c.x] : null; })()",
                  timeout=30, what=what)


def test_study_catches_up(b, api, base, ds):
    """A study that ends while its page cannot hear of it must still be
    shown ended, its curve whole: (1) the events stream opens only after
    the page fetched the study; (2) the stream is open, but the page's
    fetch of the study brings a running study back after the study's
    events went by. Both happen on a fast machine: a study of tiny trials
    ends in well under a second."""
    first, held = held_study(b, api, base, ds, "late-stream", "*/v1/events*", "Request")
    ok("(1) the page fetched the study while it ran (%s), its stream held back (%d)"
       % (first, held), first in ("queued", "running") and held >= 1, (first, held))
    got = curve_done(b, "the final state and the whole curve after the stream opened")
    ok("(1) a study that ended before the stream opened is shown ended, its curve whole",
       got == ["succeeded", [400, 800, 1600]], got)
    first, held = held_study(b, api, base, ds, "late-fetch", "*/v1/studies/{sid}", "Response")
    ok("(2) the page's fetch of the study was held with the study running (%s, %d held)"
       % (first, held), first in ("queued", "running") and held == 1, (first, held))
    got = curve_done(b, "the final state and the whole curve after a stale first fetch")
    ok("(2) a study whose events came while the page fetched it is shown ended, its curve whole",
       got == ["succeeded", [400, 800, 1600]], got)


def check_network(b, base, what):
    urls = [r["request"]["url"] for r in b.requests]
    bad = [u for u in urls if not (u.startswith(base + "/") or u.startswith("blob:")
                                   or u.startswith("data:"))]
    ok("%s: every request stayed on the daemon's origin (%d requests)" % (what, len(urls)),
       not bad and len(urls) > 5, bad[:5])
    csp = [c for c in b.console if "Content Security Policy" in c or "exception" in c.lower()
           or "Refused" in c]
    ok("%s: no CSP violation or script error" % what, not csp, csp[:5])


def test_keyed(base, key):
    b = cdp.Browser()
    try:
        api = Api(base, key)
        ds = api.req("POST", "/v1/datasets?name=ring", ring_csv(200, 2), "text/csv")["id"]
        m = api.post("/v1/models", {"task": "classification", "inputs": 2, "outputs": 2, "seed": 1,
                                    "layers": [{"type": "dense", "units": 8, "activation": "tanh"}]})["id"]
        job = api.post("/v1/jobs", {"model": m, "dataset": ds, "epochs": 5, "batch_size": 32,
                                    "optimizer": {"type": "adam", "lr": 0.01}})["id"]
        api.wait_state(job)
        b.navigate(base + "/ui/")
        b.wait("!document.querySelector('#keybox').hidden", what="the key prompt")
        shot(b, "key-prompt")
        b.eval("document.querySelector('#keyinput').focus()")
        b.call("Input.insertText", text=key)
        x, y = b.eval("(() => { const r = document.querySelector('#keyform button').getBoundingClientRect();"
                      " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        b.click(x, y)
        row = b.wait("document.querySelector('tr[data-job=\"%s\"] .state')?.textContent" % job,
                     what="the job list after the key")
        ok("with an API key: the page asks once, then lists the jobs", row == "succeeded", row)
        b.wait("document.querySelector('#live').textContent === 'live'", what="the keyed events stream")
        ok("with an API key: the events stream is open", True)
        b.navigate(base + "/ui/jobs/" + job)
        n = b.wait("(() => { const c = [...window.nnd.charts][0]; return c && c.x.length; })()",
                   what="the job's curves")
        ok("with an API key: the job page draws its 5 epochs (the key kept for the tab)", n == 5, n)
        b.pump(0.3)
        urls = [r["request"]["url"] for r in b.requests]
        ok("no request carries the key in its URL (%d requests)" % len(urls),
           urls and not any(key in u for u in urls), [u for u in urls if key in u][:3])
        sent = [e for e in b.extra if any(k.lower() == "authorization" and v == "Bearer " + key
                                          for k, v in e.get("headers", {}).items())]
        sent += [r for r in b.requests if r["request"].get("headers", {}).get("Authorization") == "Bearer " + key]
        ok("the key goes as an Authorization header (%d requests)" % len(sent), len(sent) >= 3)
        check_network(b, base, "with a key")
    finally:
        b.close()


def main():
    base, keyed, key = os.environ["NND_OPEN"], os.environ["NND_KEYED"], os.environ["NND_KEY"]
    os.makedirs(os.environ.get("SHOTS", "build/web-shots"), exist_ok=True)
    api = Api(base)
    ds, jobs, ids, mi = setup(api)
    b = cdp.Browser()
    try:
        job = test_live_job(b, api, base, ds)
        test_job_list(b, api, base, ds)
        test_compare(b, base, jobs)
        test_datasets(b, base, ds, ids)
        test_model_tabular(b, api, base, job)
        test_model_image(b, api, base, mi)
        test_studies(b, api, base, ds)
        test_study_catches_up(b, api, base, ds)
        b.pump(0.3)
        check_network(b, base, "without a key")
    finally:
        b.close()
    test_keyed(keyed, key)
    print("%d passed, %d failed" % (PASS, FAIL))
    return 0 if FAIL == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
