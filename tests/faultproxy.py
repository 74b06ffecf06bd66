"""An HTTP proxy for tests that stands between s3flow and a real S3 server.

It forwards every request unchanged (the Host header too, so SigV4 signatures
still verify) and can, per request and with a seeded random source: answer 503
SlowDown or 500 InternalError without forwarding, reset the connection, delay (some keys more),
or answer AccessDenied for chosen keys every time (SignatureDoesNotMatch for a
chosen client, ExpiredToken or another code for requests with a session token). It records every request it
saw, so tests can count, for example, the CopyObject requests per key.
"""
from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from s3flow.local import LOOPBACK

_ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>{code}</Code><Message>{message}</Message></Error>"""


@dataclass
class Faults:
    rate: float = 0.0  # share of requests that fail (transient)
    kinds: tuple[str, ...] = ("slowdown", "internal", "reset")
    delay: float = 0.0  # seconds added to the requests that pass
    slow: tuple[str, ...] = ()  # key substrings whose requests get slow_delay instead
    slow_delay: float = 0.0
    denied: tuple[str, ...] = ()  # key substrings that always get AccessDenied
    bad_signature: str = ""  # a User-Agent prefix whose requests all get SignatureDoesNotMatch
    token_refused: str = ""  # requests with a session token get this code (400): ExpiredToken...
    seed: int = 7


@dataclass
class Seen:
    method: str
    bucket: str
    key: str
    query: str
    copy_source: str
    fault: str = ""
    agent: str = ""  # User-Agent: botocore's, or s3flow's copy lane
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class FaultProxy:
    upstream_port: int
    faults: Faults = field(default_factory=Faults)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def copies_of(self, key_part: str) -> int:
        """CopyObject / UploadPartCopy requests that reached the server for matching keys."""
        return sum(1 for s in self.seen if s.copy_source and not s.fault and key_part in s.key)

    def _decide(self, key: str) -> str:
        with self._lock:
            if any(part in key for part in self.faults.denied):
                return "denied"
            if self._random.random() < self.faults.rate:
                return self._random.choice(self.faults.kinds)
        return ""

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        fault = self._decide(key) if key or parts.query else self._decide(bucket)
        agent = request.headers.get("User-Agent", "")
        if self.faults.bad_signature and agent.startswith(self.faults.bad_signature):
            fault = "signature"
        if self.faults.token_refused and request.headers.get("X-Amz-Security-Token"):
            fault = "token"
        self.seen.append(Seen(request.command, bucket, key, parts.query,
                              request.headers.get("x-amz-copy-source", ""), fault,
                              agent))
        if fault == "reset":
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close_connection = True
            request.connection.close()
            return
        if fault:
            status, code = {"slowdown": (503, "SlowDown"), "internal": (500, "InternalError"),
                            "denied": (403, "AccessDenied"),
                            "signature": (403, "SignatureDoesNotMatch"),
                            "token": (400, self.faults.token_refused)}[fault]
            self._reply(request, status, {"Content-Type": "application/xml"},
                        _ERROR.format(code=code, message=f"injected {code}").encode())
            return
        delay = self.faults.slow_delay if any(part in key for part in self.faults.slow) else self.faults.delay
        if delay:
            time.sleep(delay)
        upstream = http.client.HTTPConnection(LOOPBACK, self.upstream_port, timeout=300)
        try:
            headers = {name: value for name, value in request.headers.items()}
            upstream.request(request.command, request.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            self._reply(request, answer.status, dict(answer.getheaders()), data)
        finally:
            upstream.close()

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict, data: bytes) -> None:
        request.send_response_only(status)
        length = str(len(data))
        for name, value in headers.items():
            if name.lower() == "content-length" and request.command == "HEAD":
                length = value  # a HEAD answer describes the object it did not send
            elif name.lower() not in ("content-length", "transfer-encoding", "connection"):
                request.send_header(name, value)
        request.send_header("Content-Length", length)
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)
