#!/usr/bin/python3
"""A plain-HTTP proxy in front of a test registry that counts and slows its GETs.

Each GET is forwarded to the registry over TLS (its Accept and Authorization headers with it) and
its body sent back at most RATE bytes per second per connection: a registry behind a link of that
speed, so that pulls in flight overlap for a while whatever the machine's load, and their
concurrency shows in time. Every request is written to LOG as it arrives ("GET <path>") and as it
ends ("END <path> <bytes>", or "ABORT <path> <bytes>" when the client went away first).

usage: throttle_proxy.py PORT UPSTREAM_HOST:PORT CA_FILE RATE LOG
"""
import http.client
import http.server
import ssl
import sys
import threading
import time

port, upstream, ca_file, rate, log_path = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
context = ssl.create_default_context(cafile=ca_file)
log_lock = threading.Lock()
CHUNK = 16 * 1024


def log(line):
    with log_lock, open(log_path, "a") as f:
        f.write(line + "\n")


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        log("GET " + self.path)
        host, _, upstream_port = upstream.partition(":")
        conn = http.client.HTTPSConnection(host, int(upstream_port), context=context)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
        conn.request("GET", self.path, headers=headers)
        response = conn.getresponse()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() in ("content-type", "content-length", "docker-content-digest", "www-authenticate",
                                "location"):
                self.send_header(name, value)
        self.end_headers()
        sent, start = 0, time.monotonic()
        try:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            log(f"ABORT {self.path} {sent}")
            self.close_connection = True
            return
        finally:
            conn.close()
        log(f"END {self.path} {sent}")


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Proxy)
server.daemon_threads = True
print("listening", flush=True)
server.serve_forever()
