"""The route layer maps domain errors to HTTP; fakes stand in for registry and brokers."""

from collections.abc import Callable, Iterator
from typing import Literal

import pytest
from fastapi.testclient import TestClient

from api.catalog import ModelInfo
from api.config import Settings
from api.dispatch import QueueDepths, TaskStatus
from api.drain import DrainRates
from api.exceptions import ModelNotFound, Overloaded, ResultTimeout, TaskConflict, TaskNotFound
from api.following import TaskFollower
from api.main import create_app
from api.routes.predict import PredictFastPath
from conveyor.registry_api import MessageSchema, ModelDetail, ModelSummary, VersionSummary
from proto import model_a_pb2, task_pb2

Responder = Callable[[bytes], task_pb2.TaskResult]


def _info(instances: int = 1, version: str = "1") -> ModelInfo:
    return ModelInfo(
        name="echo",
        version=version,
        versions=("1", "2"),
        instances=instances,
        request_class=model_a_pb2.ModelARequest,
        response_class=model_a_pb2.ModelAResponse,
    )


def _summary(info: ModelInfo) -> ModelSummary:
    status: Literal["alive", "dead"] = "alive" if info.alive else "dead"
    version = VersionSummary(
        version=info.version, status=status, instances=info.instances, queue="q"
    )
    return ModelSummary(name=info.name, **version.model_dump(), versions=[version])


class FakeCatalog:
    def __init__(self) -> None:
        self.models: dict[str, ModelInfo] = {"echo": _info()}
        self.asked: list[tuple[str, str | None]] = []

    async def get(self, name: str, version: str | None = None) -> ModelInfo:
        self.asked.append((name, version))
        if name not in self.models or version not in (None, "1", "2"):
            raise ModelNotFound(f"unknown model {name!r}", model=name)
        return self.models[name]

    async def list(self) -> list[ModelSummary]:
        return [_summary(m) for m in self.models.values()]

    async def describe(self, name: str, version: str | None = None) -> ModelDetail:
        info = await self.get(name, version)
        schema = MessageSchema(type="conveyor.v1.ModelARequest", fields=[], descriptor_set="")
        return ModelDetail(
            **_summary(info).model_dump(),
            request=schema,
            response=schema.model_copy(update={"type": "conveyor.v1.ModelAResponse"}),
            example_request={"data": "x"},
        )

    async def ping(self) -> bool:
        return True


def _reply(payload: bytes) -> task_pb2.TaskResult:
    data = model_a_pb2.ModelARequest.FromString(payload).data
    response = model_a_pb2.ModelAResponse(reply=f"Processed message: {data}")
    return task_pb2.TaskResult(task_id="t", model="echo", response=response.SerializeToString())


class FakeDispatcher:
    def __init__(self) -> None:
        self.responder: Responder | None = _reply
        self.submitted: list[tuple[str, float, int, str]] = []
        self.results: dict[str, task_pb2.TaskResult] = {}
        self.cancelled: set[str] = set()

    def _accept(
        self, payload: bytes, seconds: float, priority: int, request_id: str,
        task_id: str | None = None,
    ) -> str:  # fmt: skip
        task_id = task_id or f"t{len(self.submitted)}"
        self.submitted.append((task_id, seconds, priority, request_id))
        if self.responder is not None:
            result = self.responder(payload)
            result.task_id = task_id
            self.results[task_id] = result
        return task_id

    async def run(
        self, info: ModelInfo, payload: bytes, *, seconds: float, priority: int, request_id: str,
        max_retries: int | None = None,
    ) -> task_pb2.TaskResult:  # fmt: skip
        task_id = self._accept(payload, seconds, priority, request_id)
        if task_id not in self.results:
            raise ResultTimeout("no result", model=info.name, task_id=task_id)
        return self.results[task_id]

    async def submit(
        self, info: ModelInfo, payload: bytes, *, deadline: float, priority: int, request_id: str,
        task_id: str | None = None, callback_url: str = "", max_retries: int | None = None,
        stream: bool = False,
    ) -> str:  # fmt: skip
        return self._accept(payload, deadline, priority, request_id, task_id)

    async def status(self, task_id: str) -> TaskStatus:
        if not any(t == task_id for t, *_ in self.submitted):
            raise TaskNotFound(f"unknown task {task_id!r}")
        return TaskStatus(task_id, "echo", "1", self.results.get(task_id))

    async def cancel(self, task_id: str) -> TaskStatus:
        status = await self.status(task_id)
        if status.result is not None:
            raise TaskConflict("finished", task_id=task_id, status="done")
        result = task_pb2.TaskResult(task_id=task_id, model="echo")
        result.error.code = task_pb2.TaskError.CANCELLED
        result.error.message = "cancelled"
        self.results[task_id] = result
        return TaskStatus(task_id, "echo", "1", result)

    async def queue_depths(self, model: str, version: str) -> QueueDepths:
        return QueueDepths(queued=3, dead_letters=1)

    async def ready(self) -> dict[str, bool]:
        return {"rabbitmq": True, "redis": True}


@pytest.fixture(params=["fast_path", "route"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The gateway with fakes, predict served by ``PredictFastPath`` or, with that middleware
    taken out, by the FastAPI route: every test holds for both."""
    settings = Settings(default_timeout=2.0, max_timeout=10.0)
    app = create_app(settings)
    app.state.catalog = FakeCatalog()
    app.state.dispatcher = FakeDispatcher()
    # Tasks here have no event stream: the follower never reads Redis.
    app.state.follower = TaskFollower(None, None, DrainRates(None), None, 10)  # type: ignore[arg-type]
    if request.param == "route":
        kept = [m for m in app.user_middleware if m.cls is not PredictFastPath]  # type: ignore[comparison-overlap]
        assert len(kept) == len(app.user_middleware) - 1
        app.user_middleware = kept  # before the first request builds the stack
    yield TestClient(app)  # no lifespan: nothing connects


def _dispatcher(client: TestClient) -> FakeDispatcher:
    dispatcher: FakeDispatcher = client.app.state.dispatcher  # type: ignore[attr-defined]
    return dispatcher


def _catalog(client: TestClient) -> FakeCatalog:
    catalog: FakeCatalog = client.app.state.catalog  # type: ignore[attr-defined]
    return catalog


def test_predict_answers_the_response_message(client: TestClient) -> None:
    response = client.post(
        "/predict/echo", json={"data": "example"}, headers={"X-Request-ID": "r1"}
    )
    assert response.status_code == 200
    assert response.json() == {"reply": "Processed message: example"}
    assert response.headers["x-request-id"] == "r1"
    task_id, seconds, priority, request_id = _dispatcher(client).submitted[0]
    assert (task_id, priority, request_id) == ("t0", 0, "r1")
    assert 1.9 < seconds <= 2.0  # the default timeout, counted from arrival


def test_every_response_gets_a_request_id(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert first and second and first != second
    weird = client.get("/healthz", headers={"X-Request-ID": "no spaces allowed"})
    assert weird.headers["x-request-id"] != "no spaces allowed"


def test_timeout_override_version_and_priority_are_used(client: TestClient) -> None:
    client.post("/predict/echo?timeout=7.5&version=2&priority=7", json={"data": "x"})
    _, seconds, priority, _ = _dispatcher(client).submitted[0]
    assert 7.4 < seconds <= 7.5
    assert priority == 7
    assert _catalog(client).asked[-1] == ("echo", "2")


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.post("/predict/nope", json={})
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "model_not_found",
            "message": "unknown model 'nope'",
            "model": "nope",
            "field": None,
        }
    }


def test_dead_model_is_503(client: TestClient) -> None:
    _catalog(client).models["echo"] = _info(instances=0)
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"


def test_no_result_is_504_with_task_id(client: TestClient) -> None:
    _dispatcher(client).responder = None
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 504
    error = response.json()["error"]
    assert (error["code"], error["task_id"], error["status_url"]) == ("timeout", "t0", "/tasks/t0")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("INVALID_ARGUMENT", 422),
        ("MODEL_ERROR", 500),
        ("DEADLINE_EXCEEDED", 504),
        ("DEAD_LETTERED", 500),
    ],
)
def test_error_results_map_to_status(client: TestClient, code: str, status: int) -> None:
    def failing(payload: bytes) -> task_pb2.TaskResult:
        return task_pb2.TaskResult(
            model="echo", error=task_pb2.TaskError(code=code, message="no", field="data")
        )

    _dispatcher(client).responder = failing
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code.lower()
    assert response.json()["error"]["field"] == "data"


@pytest.mark.parametrize("timeout", ["11", "0", "-1", "1e-9", "nan", "inf", "abc"])
def test_timeout_out_of_range_is_422(client: TestClient, timeout: str) -> None:
    response = client.post(f"/predict/echo?timeout={timeout}", json={"data": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "timeout"


@pytest.mark.parametrize("priority", ["-1", "10", "high"])
def test_priority_out_of_range_is_422(client: TestClient, priority: str) -> None:
    response = client.post(f"/predict/echo?priority={priority}", json={"data": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "priority"


def test_async_then_poll(client: TestClient) -> None:
    submitted = client.post("/predict/echo?mode=async", json={"data": "later"})
    assert submitted.status_code == 202
    assert submitted.json() == {
        "task_id": "t0",
        "model": "echo",
        "version": "1",
        "status": "pending",
        "status_url": "/tasks/t0",
    }
    status = client.get("/tasks/t0").json()
    assert status["status"] == "done"
    assert status["result"] == {"reply": "Processed message: later"}


def test_pending_cancel_and_unknown_tasks(client: TestClient) -> None:
    _dispatcher(client).responder = None
    client.post("/predict/echo?mode=async", json={"data": "x"})
    assert client.get("/tasks/t0").json()["status"] == "pending"
    cancelled = client.delete("/tasks/t0")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.get("/tasks/t0").json()["error"]["code"] == "cancelled"
    missing = client.get("/tasks/zzz")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "task_not_found"
    assert client.get("/tasks/not%20an%20id").status_code == 422


def test_cancelling_a_finished_task_is_409(client: TestClient) -> None:
    client.post("/predict/echo?mode=async", json={"data": "x"})
    response = client.delete("/tasks/t0")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "task_conflict"
    assert response.json()["error"]["status"] == "done"


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_bad_mode_is_422(client: TestClient) -> None:
    response = client.post("/predict/echo?mode=later", json={"data": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "mode"


def test_model_description_with_queues_and_unknown_model(client: TestClient) -> None:
    described = client.get("/models/echo")
    assert described.status_code == 200
    assert described.json()["example_request"] == {"data": "x"}
    assert (described.json()["queued"], described.json()["dead_letters"]) == (3, 1)
    assert client.get("/models/echo/versions/2").status_code == 200
    missing = client.get("/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["model"] == "nope"


def test_models_are_listed_typed(client: TestClient) -> None:
    listed = client.get("/models").json()
    assert listed[0]["name"] == "echo"
    assert listed[0]["versions"] == [
        {
            "version": "1",
            "status": "alive",
            "instances": 1,
            "queue": "q",
            "features": [],
            "max_batch_size": 0,
        }
    ]


def test_non_json_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/predict/echo", content=b'{"data": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    vendor_json = client.post(
        "/predict/echo",
        content=b'{"data": "x"}',
        headers={"Content-Type": "application/vnd.api+json; charset=utf-8"},
    )
    assert vendor_json.status_code == 200


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = b'{"data": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post(
        "/predict/echo", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"data": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    streamed = client.post(
        "/predict/echo", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


def test_deep_body_is_422(client: TestClient) -> None:
    deep = b'{"data": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    response = client.post(
        "/predict/echo", content=deep, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"


@pytest.mark.parametrize("name", ["bad%00name", "a%0D%0Ab", "x" * 101, "a.b", "model_a%3Fx=1"])
def test_bad_model_names_are_422_and_never_reach_the_catalog(client: TestClient, name: str) -> None:
    response = client.post(f"/predict/{name}", json={"data": "x"})
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == "application/json"
    assert _catalog(client).asked == [] or all(n == "echo" for n, _ in _catalog(client).asked)


def test_overload_is_429_with_retry_after(client: TestClient) -> None:
    async def full(*args: object, **kwargs: object) -> task_pb2.TaskResult:
        raise Overloaded("the queue is full", model="echo", retry_after=2)

    _dispatcher(client).run = full  # type: ignore[method-assign]
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "overloaded"


def test_an_unexpected_exception_is_a_json_500_not_plain_text(client: TestClient) -> None:
    async def broken(*args: object, **kwargs: object) -> task_pb2.TaskResult:
        raise RuntimeError("the dispatcher broke")

    _dispatcher(client).run = broken  # type: ignore[method-assign]
    quiet = TestClient(client.app, raise_server_exceptions=False)
    response = quiet.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "internal"
    assert "broke" not in response.text  # the details go to the log, not to the client


def test_an_unreadable_worker_response_is_a_json_502(client: TestClient) -> None:
    def garbage(payload: bytes) -> task_pb2.TaskResult:
        return task_pb2.TaskResult(model="echo", response=b"\xff\xff\xff")

    _dispatcher(client).responder = garbage
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_result"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/predict/echo", 405),
        ("POST", "/predict/echo/more", 404),
        ("POST", "/predict/", 404),
    ],
)
def test_what_the_shortcut_passes_on_is_answered_by_fastapi(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path, json={"data": "x"})
    assert response.status_code == status
    assert response.json()["error"]["code"] in ("not_found", "method_not_allowed")
