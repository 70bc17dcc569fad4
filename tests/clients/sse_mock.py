"""sse_mock.py - a stand-in nnd for testing how clients read event streams.

It serves one job, job_1 (2 epochs of 2 steps), whose event stream uses CRLF
line ends, comments and multi-line data, and breaks off after step 2 without
ending the chunked body the first time it is read. A client that reconnects
with Last-Event-ID: 2 gets steps 3 and 4, the epochs and the terminal state;
one that reconnects without it gets everything again (and the test sees the
duplicates). The last Last-Event-ID received is served at /last-event-id.

Run: python3 sse_mock.py [succeeded|failed]; prints its port on stdout.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FINAL = sys.argv[1] if len(sys.argv) > 1 else "succeeded"
JOB = {"id": "job_1", "model": "mdl_1", "dataset": "ds_1", "state": "running",
       "config": {"epochs": 2, "batch_size": 2}}
seen = {"last": "", "connections": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj, ctype="application/json"):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def chunk(self, text):
        b = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/v1/jobs/job_1":
            return self.reply(200, JOB)
        if self.path == "/v1/datasets/ds_1":
            return self.reply(200, {"id": "ds_1", "rows": 4})
        if self.path == "/last-event-id":
            return self.reply(200, seen)
        if self.path != "/v1/jobs/job_1/events":
            return self.reply(404, {"type": "/errors/not_found", "title": "Not Found",
                                    "status": 404, "code": "not_found",
                                    "detail": "no such job"}, "application/problem+json")
        last = self.headers.get("Last-Event-ID") or ""
        seen["last"] = last
        seen["connections"] += 1
        after = int(last) if last.isdigit() else 0
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if after == 0:
            self.chunk(": a comment line\r\n\r\n")
            self.chunk("event: state\r\ndata: {\"state\": \"running\"}\r\n\r\n")
        for step in range(after + 1, 5):
            # a multi-line data field, split across two chunks
            self.chunk("event: step\r\nid: %d\r\ndata: {\"step\": %d,\r\n" % (step, step))
            self.chunk("data: \"epoch\": %d, \"loss\": %g, \"lr\": 0.1}\r\n\r\n"
                       % ((step - 1) // 2, 1.0 / step))
            if step % 2 == 0:
                self.chunk("event: epoch\r\nid: %d\r\ndata: {\"epoch\": %d, \"train_loss\": %g}\r\n\r\n"
                           % (step, step // 2 - 1, 1.0 / step))
            if step == 2 and seen["connections"] == 1:
                self.close_connection = True
                return  # break off: no terminating chunk
        final = dict(JOB, state=FINAL)
        if FINAL == "failed":
            final["error"] = {"code": "diverged", "detail": "the loss is not finite"}
        self.chunk("event: state\r\nid: 4\r\ndata: %s\r\n\r\n" % json.dumps(final))
        self.wfile.write(b"0\r\n\r\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client hanging up is part of the test


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
