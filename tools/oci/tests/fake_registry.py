"""An in-process registry (the distribution API's push and pull subset) for the push tool's tests.

It keeps blobs and manifests in memory, checks digests as a real registry does, and can demand
Basic or Bearer authentication (its token endpoint is ``/token`` on the same server). Every
request is recorded as ``(method, path)`` so tests can assert what the client sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Auth = Literal["none", "basic", "bearer"]


@dataclass
class RegistryState:
    """What the fake registry holds and how it behaves."""

    auth: Auth = "none"
    username: str = "pusher"
    password: str = "s3cret"
    relative_location: bool = True
    """Answer upload Locations as paths (True) or absolute URLs with a query (False)."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """``name:reference`` -> (media type, bytes); stored under the tag and the digest."""
    uploads: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    scopes_requested: list[str] = field(default_factory=list)

    def digest(self, data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()


def _handler(state: RegistryState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        # -- helpers ------------------------------------------------------------------------
        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, headers: dict[str, str] | None = None) -> None:
            body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
            self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _basic_ok(self, header: str | None) -> bool:
            expected = base64.b64encode(f"{state.username}:{state.password}".encode()).decode()
            return header == f"Basic {expected}"

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization")
            if state.auth == "none":
                return True
            if state.auth == "basic":
                if self._basic_ok(header):
                    return True
                self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": 'Basic realm="fake"'})
                return False
            if header is not None and header.removeprefix("Bearer ") in state.tokens_issued:
                return True
            host = self.headers.get("Host")
            challenge = f'Bearer realm="http://{host}/token",service="fake-registry"'
            self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": challenge})
            return False

        def _token(self, query: dict[str, list[str]]) -> None:
            if not self._basic_ok(self.headers.get("Authorization")):
                self._error(401, "UNAUTHORIZED")
                return
            state.scopes_requested.extend(query.get("scope", []))
            token = uuid.uuid4().hex
            state.tokens_issued.append(token)
            self._send(
                200, json.dumps({"token": token}).encode(), {"Content-Type": "application/json"}
            )

        # -- routing ------------------------------------------------------------------------
        def _route(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            state.requests.append((self.command, url.path))
            body = self._body() if self.command in ("PUT", "POST", "PATCH") else b""
            if url.path == "/token":
                self._token(query)
                return
            if not self._authorized():
                return
            if url.path == "/v2/":
                self._send(200, b"{}")
                return
            prefix, _, rest = url.path.partition("/v2/")
            if prefix or not rest:
                self._error(404, "NAME_UNKNOWN")
                return
            if "/blobs/uploads/" in rest:
                name, _, upload = rest.partition("/blobs/uploads/")
                self._upload(name, upload, query, body)
            elif "/blobs/" in rest:
                name, _, digest = rest.partition("/blobs/")
                self._blob(digest)
            elif "/manifests/" in rest:
                name, _, reference = rest.partition("/manifests/")
                self._manifest(name, reference, body)
            else:
                self._error(404, "NAME_UNKNOWN")

        def _upload(self, name: str, upload: str, query: dict[str, list[str]], body: bytes) -> None:
            if self.command == "POST" and not upload:
                upload_id = uuid.uuid4().hex
                state.uploads[upload_id] = name
                path = f"/v2/{name}/blobs/uploads/{upload_id}"
                host = self.headers.get("Host")
                location = path if state.relative_location else f"http://{host}{path}?_state=abc"
                self._send(202, headers={"Location": location, "Docker-Upload-UUID": upload_id})
                return
            if self.command == "PUT" and upload in state.uploads:
                digest = query.get("digest", [""])[0]
                if state.digest(body) != digest:
                    self._error(400, "DIGEST_INVALID")
                    return
                state.blobs[digest] = body
                del state.uploads[upload]
                self._send(201, headers={"Docker-Content-Digest": digest})
                return
            self._error(404, "BLOB_UPLOAD_UNKNOWN")

        def _blob(self, digest: str) -> None:
            if digest not in state.blobs:
                self._error(404, "BLOB_UNKNOWN")
                return
            data = state.blobs[digest]
            headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"}
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        def _manifest(self, name: str, reference: str, body: bytes) -> None:
            if self.command == "PUT":
                manifest = json.loads(body)
                for blob in [manifest["config"], *manifest["layers"]]:
                    if blob["digest"] not in state.blobs:
                        self._error(400, "MANIFEST_BLOB_UNKNOWN")
                        return
                digest = state.digest(body)
                media_type = self.headers.get("Content-Type", "")
                state.manifests[f"{name}:{reference}"] = (media_type, body)
                state.manifests[f"{name}:{digest}"] = (media_type, body)
                self._send(201, headers={"Docker-Content-Digest": digest})
                return
            stored = state.manifests.get(f"{name}:{reference}")
            if stored is None:
                self._error(404, "MANIFEST_UNKNOWN")
                return
            media_type, data = stored
            headers = {"Content-Type": media_type, "Docker-Content-Digest": state.digest(data)}
            self._send(200, data, headers)

        do_GET = do_HEAD = do_POST = do_PUT = _route

    return Handler


@contextmanager
def fake_registry(state: RegistryState) -> Iterator[str]:
    """Serves ``state`` on a free loopback port; yields ``127.0.0.1:<port>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
