"""CORS_ORIGINS: browser clients of other origins, preflights included (api.cors)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.config import Settings
from api.cors import CorsPolicy
from api.edge import Admission
from api.main import create_app
from api.tests.test_routes import FakeCatalog, FakeDispatcher

PAGE = "http://page.test:8080"
KEY = "k" * 16
PREFLIGHT_HEADERS = "authorization, content-type, idempotency-key, x-request-id"


def _client(**settings: object) -> TestClient:
    app = create_app(Settings(**settings))  # type: ignore[arg-type]
    app.state.catalog = FakeCatalog()
    app.state.dispatcher = FakeDispatcher()
    return TestClient(app)  # no lifespan: nothing connects


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield _client(cors_origins=f"{PAGE}, http://other.test", api_keys=KEY, max_inflight=4)


def _preflight(client: TestClient, path: str, method: str = "POST", **headers: str) -> object:
    return client.options(
        path,
        headers={"Origin": PAGE, "Access-Control-Request-Method": method, **headers},
    )


def test_without_cors_origins_there_is_no_cors_header_at_all() -> None:
    client = _client()
    answer = client.post("/predict/echo", json={"data": "x"}, headers={"Origin": PAGE})
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.startswith("access-control-")]
    preflight = client.options(
        "/predict/echo", headers={"Origin": PAGE, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 405  # nothing answers preflights: OPTIONS is not served
    assert not [name for name in preflight.headers if name.startswith("access-control-")]


@pytest.mark.parametrize(
    ("path", "method", "headers"),
    [
        ("/predict/echo", "POST", PREFLIGHT_HEADERS),
        ("/v2/models/echo/infer", "POST", "content-type, inference-header-content-length"),
        ("/tasks/t0", "DELETE", "authorization"),
        ("/models", "GET", "authorization, x-request-id"),
    ],
)
def test_a_preflight_is_answered_without_a_key(
    client: TestClient, path: str, method: str, headers: str
) -> None:
    response = client.options(
        path,
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == PAGE
    assert method in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in headers.split(", "):
        assert header in allowed


def test_a_preflight_is_answered_while_the_gateway_is_full(client: TestClient) -> None:
    admission: Admission = client.app.state.admission  # type: ignore[attr-defined]
    admission.inflight = admission.max_inflight
    assert client.post("/predict/echo", json={}, headers={"Origin": PAGE}).status_code == 429
    response = client.options(
        "/predict/echo", headers={"Origin": PAGE, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 200


def test_answers_carry_the_origin_and_the_exposed_headers(client: TestClient) -> None:
    auth = {"Authorization": f"Bearer {KEY}", "Origin": PAGE, "X-Request-ID": "page-1"}
    for response in (
        client.post("/predict/echo", json={"data": "x"}, headers=auth),  # the fast path
        client.post("/v2/models/echo/infer", content=b"{}", headers=auth),  # a 400, /v2
        client.get("/models", headers=auth),
        client.post("/predict/echo", json={"data": "x"}, headers={"Origin": PAGE}),  # a 401
    ):
        assert response.headers["access-control-allow-origin"] == PAGE, response.text
        exposed = response.headers["access-control-expose-headers"]
        assert exposed == "X-Request-ID, Retry-After, Inference-Header-Content-Length"
        assert "Origin" in response.headers["vary"]
    assert client.post("/predict/echo", json={"data": "x"}, headers=auth).json() == {
        "reply": "Processed message: x"
    }


def test_a_refused_429_can_be_read_by_the_page(client: TestClient) -> None:
    admission: Admission = client.app.state.admission  # type: ignore[attr-defined]
    admission.inflight = admission.max_inflight
    response = client.post("/predict/echo", json={}, headers={"Origin": PAGE})
    assert response.status_code == 429
    assert response.headers["access-control-allow-origin"] == PAGE
    assert response.headers.get_list("access-control-allow-origin") == [PAGE]  # once
    assert "Retry-After" in response.headers["access-control-expose-headers"]


def test_another_origin_gets_no_access(client: TestClient) -> None:
    response = client.post(
        "/predict/echo",
        json={"data": "x"},
        headers={"Origin": "http://evil.test", "Authorization": f"Bearer {KEY}"},
    )
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/predict/echo", {"Origin": "http://evil.test"}, "origin"),
        ("/predict/echo", {"Access-Control-Request-Headers": "x-secret"}, "headers"),
        ("/v2/models/echo/infer", {"Origin": "http://evil.test"}, "origin"),
    ],
)
def test_a_refused_preflight_is_a_json_400(
    client: TestClient, path: str, headers: dict[str, str], reason: str
) -> None:
    response = client.options(
        path, headers={"Origin": PAGE, "Access-Control-Request-Method": "POST", **headers}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    message = error if path.startswith("/v2") else error["message"]
    if not path.startswith("/v2"):
        assert error["code"] == "cors_refused"
    assert reason in message
    assert "CORS_ORIGINS" in message


def test_any_origin() -> None:
    client = _client(cors_origins="*")
    response = client.post("/predict/echo", json={"data": "x"}, headers={"Origin": PAGE})
    assert response.headers["access-control-allow-origin"] == "*"
    preflight = client.options(
        "/predict/echo", headers={"Origin": PAGE, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_the_protocol_level_refusal_adds_the_headers_of_an_allowed_origin() -> None:
    admission = Admission(0, cors=CorsPolicy((PAGE,)))
    _, headers, _, _ = admission.refusal("/predict/m", [(b"origin", PAGE.encode())])
    assert (b"access-control-allow-origin", PAGE.encode()) in headers
    _, headers, _, _ = admission.refusal("/predict/m", [(b"origin", PAGE.encode())], cors=False)
    assert not [name for name, _ in headers if name.startswith(b"access-control-")]
    _, headers, _, _ = admission.refusal("/predict/m", [(b"origin", b"http://evil.test")])
    assert not [name for name, _ in headers if name.startswith(b"access-control-")]
    _, headers, _, _ = Admission(0).refusal("/predict/m", [(b"origin", PAGE.encode())])
    assert not [name for name, _ in headers if name.startswith(b"access-control-")]


@pytest.mark.parametrize(
    "value", ["http://page.test/", "page.test", "http://page.test/app", "http://a b"]
)
def test_an_origin_is_scheme_host_and_port_only(value: str) -> None:
    with pytest.raises(ValidationError, match="not an origin"):
        Settings(cors_origins=value)  # type: ignore[arg-type]


def test_origins_are_comma_separated() -> None:
    settings = Settings(cors_origins=" https://a.test:8443 ,HTTP://B.test,*")  # type: ignore[arg-type]
    assert settings.cors_origins == ("https://a.test:8443", "http://b.test", "*")
    assert Settings().cors_origins == ()
