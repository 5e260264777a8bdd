"""A client of the registry HTTP API v2 (the OCI distribution API): what a push and a verifying
pull need, on the standard library only.

Requests go to ``https://<host>/v2/<name>/...`` (``http://`` for a loopback host or with
``insecure``). A ``401`` answer is met once per request with its ``WWW-Authenticate`` challenge:
``Basic`` sends the credentials, ``Bearer realm=...,service=...,scope=...`` fetches a token from
the realm (with the credentials, if any) and sends that. Blobs are uploaded monolithically
(``POST`` an upload, then ``PUT`` the bytes with ``?digest=``), manifests ``PUT`` by tag with
their media type.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from tools.oci.credentials import Credentials, Repository, is_loopback
from tools.oci.errors import AuthError, RegistryError

__all__ = ["Challenge", "RegistryClient", "Response", "parse_challenge", "sha256_digest"]

_MAX_REDIRECTS = 5
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)=(?:"([^"]*)"|([^,\s]*))')


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``scheme`` (``basic``, ``bearer``) and parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge:
    """Parses ``Bearer realm="https://auth.example.com/token",service="registry"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


@dataclass(frozen=True)
class Response:
    """A registry's answer: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def error_codes(self) -> tuple[str, ...]:
        """The ``errors[].code`` of a distribution API error body."""
        try:
            errors = json.loads(self.body).get("errors", [])
            return tuple(str(e.get("code", "")) for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError):
            return ()


class RegistryClient:
    """Talks to one repository of one registry."""

    def __init__(
        self,
        repository: Repository,
        credentials: Credentials | None = None,
        insecure: bool = False,
        timeout: float = 300.0,
    ) -> None:
        self.repository = repository
        self.scheme = "http" if insecure or is_loopback(repository.host) else "https"
        self._credentials = credentials
        self._timeout = timeout
        self._authorization: str | None = None

    @property
    def base_url(self) -> str:
        """``http(s)://host/v2/name``."""
        return f"{self.scheme}://{self.repository.host}/v2/{self.repository.name}"

    # -- the API -------------------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        """``HEAD`` the blob: True if the repository has it."""
        response = self._request("HEAD", f"{self.base_url}/blobs/{digest}", expect=(200, 404))
        return response.status == 200

    def upload_blob(self, digest: str, data: bytes) -> None:
        """Uploads ``data`` as blob ``digest`` in one ``PUT`` (after ``POST``ing an upload)."""
        if sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} does not match its content; not uploading it")
        started = self._request("POST", f"{self.base_url}/blobs/uploads/", expect=(202,))
        location = started.headers.get("location")
        if not location:
            raise RegistryError("the registry started an upload without a Location", 202)
        url = urllib.parse.urljoin(self.base_url + "/", location)
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        url += separator + urllib.parse.urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        done = self._request("PUT", url, body=data, headers=headers, expect=(201,))
        answered = done.headers.get("docker-content-digest")
        if answered and answered != digest:
            raise RegistryError(f"uploaded {digest}, the registry stored {answered}", done.status)

    def put_manifest(self, reference: str, manifest: bytes, media_type: str) -> str:
        """``PUT`` the manifest under ``reference`` (a tag or its digest); returns its digest."""
        digest = sha256_digest(manifest)
        response = self._request(
            "PUT",
            f"{self.base_url}/manifests/{reference}",
            body=manifest,
            headers={"Content-Type": media_type},
            expect=(201,),
        )
        answered = response.headers.get("docker-content-digest")
        if answered and answered != digest:
            raise RegistryError(
                f"pushed manifest {digest}, the registry reports {answered}", response.status
            )
        return digest

    def get_manifest(self, reference: str, accept: tuple[str, ...]) -> Response:
        """``GET`` a manifest by tag or digest, accepting ``accept`` media types."""
        return self._request(
            "GET", f"{self.base_url}/manifests/{reference}", headers={"Accept": ", ".join(accept)}
        )

    def get_blob(self, digest: str) -> bytes:
        """``GET`` a blob (following redirects to storage) and checks its digest."""
        data = self._request("GET", f"{self.base_url}/blobs/{digest}").body
        if sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} came back as {sha256_digest(data)}")
        return data

    # -- HTTP and authentication ----------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Response:
        response = self._send(method, url, body, headers or {})
        if response.status == 401:
            self._authenticate(response)
            response = self._send(method, url, body, headers or {})
            if response.status == 401:
                raise AuthError(
                    f"{method} {self._redact(url)}: the registry refused the credentials"
                    + self._credential_hint(),
                    401,
                    response.error_codes(),
                )
        if response.status not in expect:
            codes = response.error_codes()
            detail = f" {', '.join(codes)}" if codes else ""
            cls = AuthError if response.status == 403 else RegistryError
            raise cls(
                f"{method} {self._redact(url)}: HTTP {response.status}{detail}",
                response.status,
                codes,
            )
        return response

    def _send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Response:
        all_headers = dict(headers)
        if self._authorization:
            all_headers["Authorization"] = self._authorization
        for _ in range(_MAX_REDIRECTS):
            response = _http(method, url, body, all_headers, self._timeout)
            location = response.headers.get("location")
            if method not in ("GET", "HEAD") or response.status not in (301, 302, 303, 307, 308):
                return response
            if not location:
                return response
            target = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(url).netloc:
                # Storage behind a redirect (pre-signed URLs) must not see the registry's token.
                all_headers.pop("Authorization", None)
            url = target
        raise RegistryError(f"{method} {self._redact(url)}: more than {_MAX_REDIRECTS} redirects")

    def _authenticate(self, response: Response) -> None:
        header = response.headers.get("www-authenticate", "")
        challenge = parse_challenge(header)
        if challenge.scheme == "basic":
            if self._credentials is None:
                raise AuthError(
                    "the registry wants a user name and password" + self._credential_hint(), 401
                )
            self._authorization = "Basic " + _basic(self._credentials)
        elif challenge.scheme == "bearer":
            self._authorization = "Bearer " + self._token(challenge)
        else:
            raise AuthError(f"unsupported authentication challenge {header!r}", 401)

    def _token(self, challenge: Challenge) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthError("Bearer challenge without a realm", 401)
        query = {
            "scope": challenge.params.get("scope") or f"repository:{self.repository.name}:pull,push"
        }
        if challenge.params.get("service"):
            query["service"] = challenge.params["service"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = (
            {"Authorization": "Basic " + _basic(self._credentials)} if self._credentials else {}
        )
        response = _http("GET", url, None, headers, self._timeout)
        if response.status != 200:
            raise AuthError(
                f"token service {self._redact(realm)} answered HTTP {response.status}"
                + self._credential_hint(),
                response.status,
            )
        try:
            answer = json.loads(response.body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError) as e:
            raise AuthError(f"token service {self._redact(realm)} sent no JSON token") from e
        if not isinstance(token, str) or not token:
            raise AuthError(f"token service {self._redact(realm)} sent no token")
        return token

    def _credential_hint(self) -> str:
        if self._credentials is None:
            return (
                " (no credentials found: set CONVEYOR_PUSH_USERNAME and CONVEYOR_PUSH_PASSWORD, "
                "or log in with docker/podman login)"
            )
        return f" (credentials from {self._credentials.source or 'the caller'})"

    @staticmethod
    def _redact(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _basic(credentials: Credentials | None) -> str:
    assert credentials is not None
    raw = f"{credentials.username}:{credentials.password}".encode()
    return base64.b64encode(raw).decode("ascii")


def _http(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str], timeout: float
) -> Response:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RegistryError(f"unsupported URL scheme in {url!r}")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.netloc, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    send_headers = dict(headers)
    if body is not None or method in ("PUT", "POST"):
        send_headers["Content-Length"] = str(len(body or b""))
    try:
        connection.request(method, path, body=body, headers=send_headers)
        answer = connection.getresponse()
        data = answer.read()
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
    except (OSError, http.client.HTTPException) as e:
        raise RegistryError(f"{method} {parts.scheme}://{parts.netloc}{parts.path}: {e}") from e
    finally:
        connection.close()
