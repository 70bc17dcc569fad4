"""nnd_client - a Python client for the nnd training service, standard library only.

It wraps the HTTP API of shared/API.md: data sets (from a CSV file, from arrays,
from an MNIST-style IDX pair), models and their weights, training jobs, their
live event stream (Server-Sent Events, parsed here) and predictions. Every
non-2xx reply raises NndError carrying the problem+json fields.

    from nnd_client import Client
    nnd = Client()                       # NND_SERVER / NND_API_KEY, or arguments
    ds = nnd.upload_csv("iris.csv", label="species")
    model = nnd.create_model({"task": "classification", "inputs": ds["features"],
                              "outputs": len(ds["classes"]),
                              "layers": [{"type": "dense", "units": 16, "activation": "relu"}]})
    job = nnd.train(model["id"], ds["id"], epochs=50, standardize=True)
    for ev in nnd.follow(job["id"]):
        print(ev.event, ev.data)
    print(nnd.predict(model["id"], [[5.1, 3.5, 1.4, 0.2]]))
"""

import http.client
import json
import os
import ssl
import urllib.parse
import uuid

__all__ = ["Client", "NndError", "Event", "DEFAULT_SERVER", "TERMINAL_STATES"]

DEFAULT_SERVER = "http://127.0.0.1:8080"
TERMINAL_STATES = ("succeeded", "failed", "cancelled")


class NndError(Exception):
    """An error reply from nnd (application/problem+json, RFC 9457), or a transport failure.

    Attributes: status (HTTP status, 0 for a transport error), code (snake_case
    code such as "validation_failed"), title, detail, errors (list of
    {"field", "message"} for validation failures), type, and body (the whole
    decoded problem object, or the raw text when it was not JSON).
    """

    def __init__(self, status, code="", title="", detail="", errors=None, type_="", body=None):
        self.status = status
        self.code = code or ""
        self.title = title or ""
        self.detail = detail or ""
        self.errors = list(errors or [])
        self.type = type_ or ""
        self.body = body
        msg = "%s %s: %s" % (status, self.code or self.title, self.detail or self.title)
        if self.errors:
            msg += " (" + "; ".join("%s: %s" % (e.get("field"), e.get("message"))
                                    for e in self.errors) + ")"
        super().__init__(msg)

    @classmethod
    def from_reply(cls, status, reason, raw):
        """Builds the error from a reply's status, reason phrase and body bytes."""
        text = raw.decode("utf-8", "replace") if raw else ""
        try:
            p = json.loads(text) if text else {}
        except ValueError:
            p = None
        if not isinstance(p, dict):
            return cls(status, "", reason, text.strip(), body=text)
        return cls(p.get("status", status), p.get("code", ""), p.get("title", reason),
                   p.get("detail", ""), p.get("errors"), p.get("type", ""), p)


class Event:
    """One server-sent event: event (its type: "step", "epoch", "state"),
    id (the id: field as a string, or None) and data (the decoded JSON payload)."""

    __slots__ = ("event", "id", "data")

    def __init__(self, event, id_, data):
        self.event = event
        self.id = id_
        self.data = data

    def __repr__(self):
        return "Event(%r, id=%r, data=%r)" % (self.event, self.id, self.data)


def _read_bytes(src):
    """Bytes from a path, a bytes object or a binary file object."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    if hasattr(src, "read"):
        return src.read()
    with open(src, "rb") as f:
        return f.read()


def _basename(src, default):
    if isinstance(src, (str, os.PathLike)):
        return os.path.basename(os.fspath(src))
    return getattr(src, "name", None) and os.path.basename(src.name) or default


class Client:
    """A connection to one nnd daemon.

    server: base URL (default: $NND_SERVER, else http://127.0.0.1:8080).
    api_key: bearer key (default: $NND_API_KEY; none when unset or empty).
    timeout: seconds for each request (the event stream waits without limit).
    """

    def __init__(self, server=None, api_key=None, timeout=120):
        self.server = (server or os.environ.get("NND_SERVER") or DEFAULT_SERVER).rstrip("/")
        if api_key is None:
            api_key = os.environ.get("NND_API_KEY") or None
        self.api_key = api_key
        self.timeout = timeout
        u = urllib.parse.urlsplit(self.server)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("server must be an http:// or https:// URL, got %r" % self.server)
        self._scheme = u.scheme
        self._host = u.hostname
        self._port = u.port or (443 if u.scheme == "https" else 80)
        self._prefix = u.path.rstrip("/")

    # -- transport ---------------------------------------------------------

    def _connect(self, timeout):
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _path(self, path, query=None):
        q = {k: v for k, v in (query or {}).items() if v is not None}
        for k, v in q.items():
            if isinstance(v, bool):
                q[k] = "true" if v else "false"
        return self._prefix + path + ("?" + urllib.parse.urlencode(q) if q else "")

    def _headers(self, extra=None):
        h = {"Accept": "application/json, application/problem+json"}
        if self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        h.update(extra or {})
        return h

    def _open(self, method, path, body=None, headers=None, timeout=None):
        """Sends a request; returns (connection, response). The caller closes both."""
        conn = self._connect(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise NndError(0, "transport_error", "Transport error",
                           "%s %s%s: %s" % (method, self.server, path, e)) from e

    def request(self, method, path, json_body=None, body=None, content_type=None,
                query=None, raw=False, binary=False, accept=None):
        """Sends one request and returns the decoded JSON reply (None for an empty
        body, the text when raw=True, the bytes when binary=True). Raises
        NndError for any status >= 300.

        path is relative to the server ("/v1/datasets"); json_body is encoded as
        JSON; body/content_type send bytes as they are; query is a dict;
        accept, when given, is the Accept header.
        """
        headers = {"Accept": accept} if accept else {}
        if json_body is not None:
            body = json.dumps(json_body, allow_nan=False).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        conn, resp = self._open(method, self._path(path, query), body, headers)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise NndError(0, "transport_error", "Transport error", str(e)) from e
        finally:
            conn.close()
        if resp.status >= 300:
            raise NndError.from_reply(resp.status, resp.reason, data)
        if binary:
            return data
        if raw:
            return data.decode("utf-8", "replace")
        if not data:
            return None
        return json.loads(data.decode("utf-8"))

    # -- service -----------------------------------------------------------

    def health(self):
        """GET /healthz: {"status": "ok"} while the daemon serves."""
        return self.request("GET", "/healthz")

    def ready(self):
        """GET /readyz: True when the daemon is ready, False when it answers 503."""
        try:
            self.request("GET", "/readyz")
            return True
        except NndError as e:
            if e.status == 503:
                return False
            raise

    def info(self):
        """GET /v1/info: version, workers, queue capacity and BLAS details."""
        return self.request("GET", "/v1/info")

    def metrics(self):
        """GET /metrics: the Prometheus text exposition, as a string."""
        return self.request("GET", "/metrics", raw=True)

    def openapi(self):
        """GET /openapi.json: the OpenAPI 3 document of the API, decoded."""
        return self.request("GET", "/openapi.json")

    # -- data sets ---------------------------------------------------------

    def upload_csv(self, src, name=None, label=None, header=None, task=None, classes=None):
        """Uploads a CSV data set (POST /v1/datasets, text/csv) and returns it.

        src: a path, bytes, or a binary file object. label: the label column's
        name or 0-based index (default: the last column). header: whether the
        first line names the columns (default true). task: "classification" or
        "regression" (default: inferred by the server). classes: the class
        names and their order (a list), so a file that lacks one still has it;
        a label outside them is refused.
        """
        q = {"name": name, "label": label, "header": header, "task": task,
             "classes": ",".join(classes) if classes is not None else None}
        return self.request("POST", "/v1/datasets", body=_read_bytes(src),
                            content_type="text/csv", query=q)

    def upload_arrays(self, x, y, name=None, task=None, classes=None):
        """Uploads a data set from arrays (POST /v1/datasets, JSON) and returns it.

        x: a list of rows (lists of numbers). y: a list of labels (numbers or
        strings for classification), of numbers or of equal-length lists for
        regression. Integer labels >= 0 are class indices, as in PyTorch
        (classes "0".."max"), or indices into classes (a list of names) when
        given. Anything with .tolist() (numpy arrays) is accepted too.
        """
        if hasattr(x, "tolist"):
            x = x.tolist()
        if hasattr(y, "tolist"):
            y = y.tolist()
        body = {"x": x, "y": y}
        if name is not None:
            body["name"] = name
        if task is not None:
            body["task"] = task
        if classes is not None:
            body["classes"] = list(classes)
        return self.request("POST", "/v1/datasets", json_body=body)

    def upload_idx(self, images, labels, name=None):
        """Uploads an IDX image/label pair (MNIST, Fashion-MNIST; gzip or not) as
        multipart/form-data and returns the data set.

        images, labels: paths, bytes or binary file objects.
        """
        boundary = "nnd-" + uuid.uuid4().hex
        parts = []
        for field, src, default in (("images", images, "images.idx"),
                                    ("labels", labels, "labels.idx")):
            fname = _basename(src, default).replace('"', "_")
            parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
                          "filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                          % (boundary, field, fname)).encode())
            parts.append(_read_bytes(src))
            parts.append(b"\r\n")
        parts.append(("--%s--\r\n" % boundary).encode())
        return self.request("POST", "/v1/datasets", body=b"".join(parts),
                            content_type="multipart/form-data; boundary=" + boundary,
                            query={"name": name})

    def list_datasets(self, limit=None, offset=None):
        """GET /v1/datasets: {"datasets": [...], "total": n} (one page)."""
        return self.request("GET", "/v1/datasets", query={"limit": limit, "offset": offset})

    def get_dataset(self, dataset_id):
        """GET /v1/datasets/{id}: one data set."""
        return self.request("GET", "/v1/datasets/" + _seg(dataset_id))

    def dataset_rows(self, dataset_id, offset=None, limit=None, csv=False):
        """GET /v1/datasets/{id}/data: the rows back. By default the JSON
        {"x", "y", "classes", "feature_names"} (y as class indices for
        classification, raw values in x, None for missing); with csv=True the
        CSV text (labels by class name)."""
        q = {"offset": offset, "limit": limit}
        path = "/v1/datasets/%s/data" % _seg(dataset_id)
        if csv:
            return self.request("GET", path, query=q, raw=True, accept="text/csv")
        return self.request("GET", path, query=q, accept="application/json")

    def delete_dataset(self, dataset_id):
        """DELETE /v1/datasets/{id}. Raises NndError 409 while a live job uses it."""
        self.request("DELETE", "/v1/datasets/" + _seg(dataset_id))

    # -- models ------------------------------------------------------------

    def create_model(self, spec=None, **fields):
        """POST /v1/models: creates a model from a spec dict (and/or keyword
        fields: name, task, inputs, outputs, layers, init, seed); returns it
        with its id, parameter count and version 0."""
        body = dict(spec or {})
        body.update(fields)
        return self.request("POST", "/v1/models", json_body=body)

    def list_models(self, limit=None, offset=None):
        """GET /v1/models: {"models": [...], "total": n} (one page)."""
        return self.request("GET", "/v1/models", query={"limit": limit, "offset": offset})

    def get_model(self, model_id):
        """GET /v1/models/{id}: the model, with metrics and classes once trained."""
        return self.request("GET", "/v1/models/" + _seg(model_id))

    def delete_model(self, model_id):
        """DELETE /v1/models/{id}."""
        self.request("DELETE", "/v1/models/" + _seg(model_id))

    def get_weights(self, model_id):
        """GET /v1/models/{id}/weights: {"layers": [...], "standardize"?: {...}}."""
        return self.request("GET", "/v1/models/%s/weights" % _seg(model_id))

    def put_weights(self, model_id, weights):
        """PUT /v1/models/{id}/weights: publishes a new version from a weights
        document shaped like get_weights' reply; returns the server's reply."""
        return self.request("PUT", "/v1/models/%s/weights" % _seg(model_id), json_body=weights)

    def export_onnx(self, model_id, path=None, opset=None):
        """GET /v1/models/{id}/export?format=onnx: the newest version as an ONNX
        model (opset 13, the default, to 17). Returns the file's bytes, and
        writes them to path when given (then returns path)."""
        data = self.request("GET", "/v1/models/%s/export" % _seg(model_id),
                            query={"format": "onnx", "opset": opset}, binary=True)
        if path is None:
            return data
        with open(path, "wb") as f:
            f.write(data)
        return path

    def import_onnx(self, src, name=None, task=None, classes=None):
        """POST /v1/models?format=onnx: a model from an ONNX file (a path, bytes
        or a binary file object), e.g. torch.onnx.export of an nn.Sequential MLP.
        task: "classification" or "regression" (default: classification when the
        graph ends in Softmax); classes: the class names (a list or "a,b,c").
        Returns the model; an unsupported operator raises NndError 422 naming
        the node."""
        if classes is not None and not isinstance(classes, str):
            classes = ",".join(str(c) for c in classes)
        q = {"format": "onnx", "name": name, "task": task, "classes": classes}
        return self.request("POST", "/v1/models", body=_read_bytes(src),
                            content_type="application/octet-stream", query=q)

    def predict(self, model_id, instances):
        """POST /v1/models/{id}/predict; returns {"model_version", "predictions":
        [...]} (and "warnings" for raw records: unseen levels, ignored keys).

        instances: rows of numbers (lists, or a numpy array), or for a model
        trained on a CSV with typed columns raw records: dicts by column name
        ({"island": "Biscoe", "bill_length_mm": 39.1, "sex": None}) or lists
        of raw values in column order. One dict alone is one record; float
        NaN (pandas' missing value) is sent as null."""
        if hasattr(instances, "tolist"):
            instances = instances.tolist()
        if isinstance(instances, dict):
            instances = [instances]

        def raw(v):
            return None if isinstance(v, float) and v != v else v
        rows = []
        for r in instances:
            if isinstance(r, dict):
                r = {k: raw(v) for k, v in r.items()}
            elif isinstance(r, (list, tuple)):
                r = [raw(v) for v in r]
            rows.append(r)
        return self.request("POST", "/v1/models/%s/predict" % _seg(model_id),
                            json_body={"instances": rows})

    # -- jobs --------------------------------------------------------------

    def train(self, model_id, dataset_id, config=None, replicas=None, shards=None, **fields):
        """POST /v1/jobs: starts training model_id on dataset_id; returns the job
        (state "queued"). config is a dict of job fields (epochs, batch_size,
        optimizer, validation, standardize, ...); keyword fields override it.
        replicas: data-parallel workers sharing each batch; shards: slices each
        batch is cut into (default: replicas). The weights depend on shards
        only; the job's "placement" says where its replicas ran."""
        body = dict(config or {})
        body.update(fields)
        if replicas is not None:
            body["replicas"] = replicas
        if shards is not None:
            body["shards"] = shards
        body["model"] = model_id
        body["dataset"] = dataset_id
        return self.request("POST", "/v1/jobs", json_body=body)

    def create_job(self, config):
        """POST /v1/jobs with a complete job document (including model and dataset)."""
        return self.request("POST", "/v1/jobs", json_body=config)

    def list_jobs(self, state=None, limit=None, offset=None):
        """GET /v1/jobs: {"jobs": [...], "total": n}, optionally of one state."""
        return self.request("GET", "/v1/jobs",
                            query={"state": state, "limit": limit, "offset": offset})

    def get_job(self, job_id):
        """GET /v1/jobs/{id}: the job object."""
        return self.request("GET", "/v1/jobs/" + _seg(job_id))

    def cancel_job(self, job_id):
        """POST /v1/jobs/{id}/cancel: asks the job to stop at its next step.
        Raises NndError 409 when the job has already finished."""
        return self.request("POST", "/v1/jobs/%s/cancel" % _seg(job_id))

    def job_metrics(self, job_id, since_step=None):
        """GET /v1/jobs/{id}/metrics: {"steps": [...], "epochs": [...]}."""
        return self.request("GET", "/v1/jobs/%s/metrics" % _seg(job_id),
                            query={"since_step": since_step})

    def follow(self, job_id, last_event_id=None, reconnect=3):
        """Iterates over the job's events (GET /v1/jobs/{id}/events, SSE) as Event
        objects: the history first, then live "step", "epoch" and "state" events.
        Ends after the terminal "state" event (succeeded, failed, cancelled).

        last_event_id resumes after that step. When the connection drops before
        the terminal event, it reconnects up to `reconnect` times with
        Last-Event-ID set to the last id seen.
        """
        return self._follow("/v1/jobs/%s/events" % _seg(job_id), last_event_id, reconnect,
                            lambda: self.get_job(job_id), job_id)

    def _follow(self, events_path, last_event_id, reconnect, get_final, what):
        """The events of a job or a study to its terminal state event (see
        follow); get_final() reads the object when the stream ends early."""
        path = self._path(events_path)
        last = None if last_event_id is None else str(last_event_id)
        tries = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = last
            conn, resp = self._open("GET", path, headers=headers, timeout=None)
            try:
                if resp.status >= 300:
                    raise NndError.from_reply(resp.status, resp.reason, resp.read())
                try:
                    for ev in _parse_sse(resp):
                        if ev.id is not None:
                            last = ev.id
                        yield ev
                        if ev.event == "state" and isinstance(ev.data, dict) \
                                and ev.data.get("state") in TERMINAL_STATES:
                            return
                except (OSError, http.client.HTTPException):
                    pass
            finally:
                conn.close()
            # The stream ended without a terminal state: it may already be
            # over (the server closed it) or the connection dropped.
            tries += 1
            if tries > reconnect:
                obj = get_final()
                if obj.get("state") in TERMINAL_STATES:
                    yield Event("state", last, obj)
                    return
                raise NndError(0, "stream_ended", "Stream ended",
                               "the event stream of %s ended before it finished" % what)

    def wait(self, job_id, on_event=None):
        """Follows the job until it ends and returns its final job object.
        on_event, when given, is called with each Event."""
        final = None
        for ev in self.follow(job_id):
            if on_event:
                on_event(ev)
            if ev.event == "state":
                final = ev.data
        if final is None or final.get("state") not in TERMINAL_STATES:
            final = self.get_job(job_id)
        return final

    # -- generated data sets and studies ------------------------------------

    def generate_dataset(self, function, name=None, **fields):
        """POST /v1/datasets with {"generator": {...}}: a data set drawn from
        the seed's function classes (linear, additive, tensor_product,
        composition, teacher); fields are the generator's (inputs, rows,
        smoothness, noise_std, function_seed, sample_seed, ...)."""
        gen = dict(fields)
        gen["function"] = function
        body = {"generator": gen}
        if name is not None:
            body["name"] = name
        return self.request("POST", "/v1/datasets", json_body=body)

    def create_study(self, study=None, **fields):
        """POST /v1/studies: starts a study (dataset, objective, model, job,
        space, strategy, ...); returns the study object (202)."""
        body = dict(study or {})
        body.update(fields)
        return self.request("POST", "/v1/studies", json_body=body)

    def list_studies(self, limit=None, offset=None):
        """GET /v1/studies: {"studies": [...], "total": n}."""
        return self.request("GET", "/v1/studies", query={"limit": limit, "offset": offset})

    def get_study(self, study_id):
        """GET /v1/studies/{id}: the study object (trials, best, curves, ...)."""
        return self.request("GET", "/v1/studies/" + _seg(study_id))

    def study_trials(self, study_id, sort=None, limit=None, offset=None):
        """GET /v1/studies/{id}/trials: the leaderboard, best first, or by
        trial number with sort="number"."""
        return self.request("GET", "/v1/studies/%s/trials" % _seg(study_id),
                            query={"sort": sort, "limit": limit, "offset": offset})

    def cancel_study(self, study_id):
        """POST /v1/studies/{id}/cancel (NndError 409 once it has ended)."""
        return self.request("POST", "/v1/studies/%s/cancel" % _seg(study_id))

    def delete_study(self, study_id, keep_best=False):
        """DELETE /v1/studies/{id}, with its trials' jobs and models (the best
        model stays with keep_best=True)."""
        return self.request("DELETE", "/v1/studies/" + _seg(study_id),
                            query={"keep_best": "true" if keep_best else None})

    def follow_study(self, study_id, last_event_id=None, reconnect=3):
        """Iterates over the study's events (GET /v1/studies/{id}/events) as
        Event objects: "trial" (a trial's leaderboard entry) and "state" (the
        study object); ends after the terminal state event. Reconnects after
        the last id seen when the connection drops."""
        return self._follow("/v1/studies/%s/events" % _seg(study_id), last_event_id, reconnect,
                            lambda: self.get_study(study_id), "study " + study_id)

    def wait_study(self, study_id, on_event=None):
        """Follows the study until it ends; returns its final object."""
        for ev in self.follow_study(study_id):
            if on_event:
                on_event(ev)
        return self.get_study(study_id)


def _seg(s):
    """An id as one safe path segment."""
    return urllib.parse.quote(str(s), safe="")


def _parse_sse(stream):
    """Parses a text/event-stream (the WHATWG rules) from a binary file-like
    object, yielding an Event at each blank line that ends an event with data."""
    event, data, id_ = "", [], None
    while True:
        line = stream.readline()
        if not line:
            return
        line = line.decode("utf-8", "replace").rstrip("\r\n")
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = text
                yield Event(event or "message", id_, payload)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            id_ = value
