"""cdp.py - a small client of Chromium's DevTools protocol for the dashboard's
browser tests and benchmarks: starts headless Chromium (Debian's
chromium-headless-shell) with a throwaway profile, opens its page target
over a WebSocket (python3-websocket), and offers what the tests need:
navigate, evaluate (awaiting promises), wait for a condition, mouse input,
screenshots, and the network requests and console messages seen.

Every host but the loopback is unresolvable for the browser
(--host-resolver-rules), so a page that reached for a CDN would break; the
tests also check each request's URL.
"""
import base64
import ctypes
import json
import os
import signal
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket


def find_chromium():
    # The binary itself before Debian's /usr/bin wrapper: the wrapper runs it
    # as a child (no exec), so signalling the wrapper alone would orphan it.
    for c in (os.environ.get("NND_CHROMIUM"), "/usr/lib/chromium/chromium-headless-shell",
              "/usr/lib/chromium/headless_shell", shutil.which("chromium-headless-shell"),
              shutil.which("chromium")):
        if c and os.access(c, os.X_OK):
            return c
    return None


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Browser:
    def __init__(self, width=1280, height=900, binary=None, nice=0):
        self.dir = tempfile.mkdtemp(prefix="nnd-chromium.")
        binary = binary or find_chromium()
        if not binary:
            raise RuntimeError("no headless Chromium")
        args = (["nice", "-n", str(nice)] if nice else []) + [binary, "--headless", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-port=0", "--user-data-dir=" + self.dir,
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--metrics-recording-only", "--mute-audio",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        # Its own process group, killed whole in close(); and the browser dies
        # with this process (PR_SET_PDEATHSIG) when a test is killed outright.
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        port_file = os.path.join(self.dir, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not start")
            time.sleep(0.05)
        port = int(open(port_file).read().split("\n")[0])
        self.port, self.bws = port, None
        targets = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port))
        page = [t for t in targets if t.get("type") == "page"][0]
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []        # (method, params) not yet taken
        self.requests = []      # Network.requestWillBeSent params
        self.extra = []         # Network.requestWillBeSentExtraInfo params (headers sent)
        self.console = []       # console messages and log entries (text)
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(domain + ".enable")

    # -- protocol

    def _take(self, msg):
        m = msg.get("method")
        p = msg.get("params", {})
        if m == "Network.requestWillBeSent":
            self.requests.append(p)
        elif m == "Network.requestWillBeSentExtraInfo":
            self.extra.append(p)
        elif m == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                         for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append("exception: %s %s" % (d.get("text"), d.get("exception", {}).get("description")))
        elif m == "Log.entryAdded":
            self.console.append(p["entry"].get("text", ""))
        self.events.append((m, p))

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self._take(msg)

    def browser_call(self, method, **params):
        """A command to the browser itself (not the page): Target.* commands
        such as createBrowserContext are refused on a page's connection."""
        if self.bws is None:
            ver = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/version" % self.port))
            self.bws = websocket.create_connection(ver["webSocketDebuggerUrl"], timeout=60,
                                                   suppress_origin=True)
            self.bnext = 0
        self.bnext += 1
        self.bws.send(json.dumps({"id": self.bnext, "method": method, "params": params}))
        while True:
            msg = json.loads(self.bws.recv())
            if msg.get("id") == self.bnext:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    def pump(self, seconds):
        """Reads events for a while (requests and console messages)."""
        end = time.time() + seconds
        self.ws.settimeout(0.05)
        try:
            while time.time() < end:
                try:
                    msg = json.loads(self.ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                if "method" in msg:
                    self._take(msg)
        finally:
            self.ws.settimeout(60)

    # -- pages

    def navigate(self, url, timeout=30):
        self.events = []
        self.call("Page.navigate", url=url)
        end = time.time() + timeout
        while not any(m == "Page.loadEventFired" for m, _ in self.events):
            if time.time() > end:
                raise RuntimeError("page did not load: " + url)
            self.pump(0.05)

    def eval(self, expr, timeout=30):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True,
                      timeout=int(timeout * 1000))
        if "exceptionDetails" in r:
            raise RuntimeError("JS: %s" % json.dumps(r["exceptionDetails"])[:500])
        return r.get("result", {}).get("value")

    def wait(self, expr, timeout=20, what=None):
        """Waits until expr is truthy in the page; returns its value."""
        end = time.time() + timeout
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.time() > end:
                raise AssertionError("timed out waiting for %s (console: %s)"
                                     % (what or expr, self.console[-5:]))
            self.pump(0.1)

    def click(self, x, y):
        for t in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=t, x=x, y=y, button="left", clickCount=1)

    def drag(self, points):
        """A mouse stroke through points (page coordinates)."""
        x, y = points[0]
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left",
                  buttons=1, clickCount=1)
        for x, y in points[1:]:
            self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left",
                      buttons=1)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left",
                  buttons=0, clickCount=1)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def _signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self):
        for w in (getattr(self, "ws", None), getattr(self, "bws", None)):
            try:
                if w:
                    w.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # renderers and helpers left in the group
        shutil.rmtree(self.dir, ignore_errors=True)
