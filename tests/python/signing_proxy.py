"""A signing proxy: forwards every request to UPSTREAM, signing each one
that is not a GET with the shared secret the way the README says (a fresh
challenge from UPSTREAM/challenge each time). Lets a tool that knows
nothing of the signature (schemathesis) reach the handlers behind it.
With LOG, each exchange is written there as one line, `METHOD PATH STATUS`
(PATH as sent, query included), so a test can see what every operation
answered.

usage: signing_proxy.py UPSTREAM SECRET [LOG]   (prints the port, then serves)
"""
import hashlib
import hmac
import http.client
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = sys.argv[1].rstrip("/")
SECRET = sys.argv[2].encode()
HOST = urllib.parse.urlsplit(UPSTREAM)
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host", "content-length"}
SIGNED = {"x-timestamp", "x-challenge", "x-signature"}
LOG = open(sys.argv[3], "a", buffering=1) if len(sys.argv) > 3 else None
LOG_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP | SIGNED}
        if self.command not in ("GET", "HEAD"):
            req = urllib.request.Request(UPSTREAM + "/challenge", headers={"Accept": "text/plain"})
            challenge = urllib.request.urlopen(req, timeout=30).read().decode().strip()
            ts = str(int(time.time()))
            text = "\n".join([self.command, self.path, ts, challenge, hashlib.sha256(body).hexdigest()])
            headers["X-Timestamp"] = ts
            headers["X-Challenge"] = challenge
            headers["X-Signature"] = hmac.new(SECRET, text.encode(), hashlib.sha256).hexdigest()
        conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=300)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if LOG is not None:
            with LOG_LOCK:
                LOG.write(f"{self.command} {self.path} {resp.status}\n")
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def __getattr__(self, name):
        # Every method, even ones nobody registered (QUERY, say): the
        # server behind decides what it accepts.
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
