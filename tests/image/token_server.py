#!/usr/bin/python3
"""A registry token server for tests (the Bearer flow of the distribution token spec).

GET /token?service=S&scope=repository:NAME:pull,push with HTTP Basic credentials answers
{"token": JWT}: an ES256 JWT whose x5c header carries the signing certificate, which the registry
trusts (auth.token.rootcertbundle). No or wrong credentials: 401.

usage: token_server.py PORT TLS_CERT TLS_KEY SIGNING_CERT SIGNING_KEY USERNAME PASSWORD
"""
import base64
import http.server
import json
import ssl
import sys
import time
import urllib.parse
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

port, tls_cert, tls_key, sign_cert, sign_key, username, password = sys.argv[1:8]
with open(sign_cert, "rb") as f:
    cert_der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
with open(sign_key, "rb") as f:
    key = serialization.load_pem_private_key(f.read(), password=None)
expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path != "/token":
            self.send_error(404)
            return
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}')
            return
        query = urllib.parse.parse_qs(url.query)
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": "feos-test-issuer", "sub": username, "aud": query.get("service", [""])[0],
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access}
        token = jwt.encode(claims, key, algorithm="ES256",
                           headers={"x5c": [base64.b64encode(cert_der).decode()]})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", int(port)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(tls_cert, tls_key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
