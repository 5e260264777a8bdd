"""The route layer maps domain errors to HTTP; fakes stand in for registry and brokers."""

from collections.abc import Callable, Iterator
from typing import Literal

import pytest
from fastapi.testclient import TestClient

from api.catalog import ModelInfo
from api.config import Settings
from api.dispatch import TaskStatus
from api.exceptions import ModelNotFound, ResultTimeout, TaskNotFound
from api.main import create_app
from conveyor.registry_api import MessageSchema, ModelDetail, ModelSummary
from proto import model_a_pb2, task_pb2

Responder = Callable[[bytes], task_pb2.TaskResult]


def _info(instances: int = 1) -> ModelInfo:
    return ModelInfo(
        name="echo",
        version="1",
        queue="conveyor.model.echo",
        instances=instances,
        request_class=model_a_pb2.ModelARequest,
        response_class=model_a_pb2.ModelAResponse,
    )


def _summary(info: ModelInfo) -> ModelSummary:
    status: Literal["alive", "dead"] = "alive" if info.alive else "dead"
    return ModelSummary(
        name=info.name,
        status=status,
        version=info.version,
        instances=info.instances,
        queue=info.queue,
    )


class FakeCatalog:
    def __init__(self) -> None:
        self.models: dict[str, ModelInfo] = {"echo": _info()}

    async def get(self, name: str) -> ModelInfo:
        if name not in self.models:
            raise ModelNotFound(f"unknown model {name!r}", model=name)
        return self.models[name]

    async def list(self) -> list[ModelSummary]:
        return [_summary(m) for m in self.models.values()]

    async def describe(self, name: str) -> ModelDetail:
        info = await self.get(name)
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
        self.submitted: list[tuple[str, float, bool]] = []
        self.results: dict[str, task_pb2.TaskResult] = {}

    async def submit(self, model: ModelInfo, payload: bytes, deadline: float, wait: bool) -> str:
        task_id = f"t{len(self.submitted)}"
        self.submitted.append((task_id, deadline, wait))
        if self.responder is not None:
            result = self.responder(payload)
            result.task_id = task_id
            self.results[task_id] = result
        return task_id

    async def wait_result(self, task_id: str, model: str, seconds: float) -> task_pb2.TaskResult:
        if task_id not in self.results:
            raise ResultTimeout("no result", model=model, task_id=task_id)
        return self.results[task_id]

    async def status(self, task_id: str) -> TaskStatus:
        if not any(t == task_id for t, _, _ in self.submitted):
            raise TaskNotFound(f"unknown task {task_id!r}")
        return TaskStatus(task_id=task_id, model="echo", result=self.results.get(task_id))

    async def ready(self) -> dict[str, bool]:
        return {"rabbitmq": True, "redis": True}


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(default_timeout=2.0, max_timeout=10.0)
    app = create_app(settings)
    app.state.settings = settings
    app.state.catalog = FakeCatalog()
    app.state.dispatcher = FakeDispatcher()
    yield TestClient(app)  # no lifespan: nothing connects


def test_predict_answers_the_response_message(client: TestClient) -> None:
    response = client.post("/predict/echo", json={"data": "example"})
    assert response.status_code == 200
    assert response.json() == {"reply": "Processed message: example"}
    assert client.app.state.dispatcher.submitted == [("t0", 2.0, True)]  # type: ignore[attr-defined]


def test_timeout_override_is_used(client: TestClient) -> None:
    client.post("/predict/echo?timeout=7.5", json={"data": "x"})
    assert client.app.state.dispatcher.submitted[0][1] == 7.5  # type: ignore[attr-defined]


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
    client.app.state.catalog.models["echo"] = _info(instances=0)  # type: ignore[attr-defined]
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"


def test_no_result_is_504_with_task_id(client: TestClient) -> None:
    client.app.state.dispatcher.responder = None  # type: ignore[attr-defined]
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
    ],
)
def test_error_results_map_to_status(client: TestClient, code: str, status: int) -> None:
    def failing(payload: bytes) -> task_pb2.TaskResult:
        return task_pb2.TaskResult(
            model="echo", error=task_pb2.TaskError(code=code, message="no", field="data")
        )

    client.app.state.dispatcher.responder = failing  # type: ignore[attr-defined]
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code.lower()
    assert response.json()["error"]["field"] == "data"


def test_timeout_above_maximum_is_422(client: TestClient) -> None:
    response = client.post("/predict/echo?timeout=11", json={"data": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "timeout"


def test_async_then_poll(client: TestClient) -> None:
    submitted = client.post("/predict/echo?mode=async", json={"data": "later"})
    assert submitted.status_code == 202
    assert submitted.json() == {
        "task_id": "t0",
        "model": "echo",
        "status": "pending",
        "status_url": "/tasks/t0",
    }
    status = client.get("/tasks/t0").json()
    assert status["status"] == "done"
    assert status["result"] == {"reply": "Processed message: later"}


def test_pending_and_unknown_tasks(client: TestClient) -> None:
    client.app.state.dispatcher.responder = None  # type: ignore[attr-defined]
    client.post("/predict/echo?mode=async", json={"data": "x"})
    assert client.get("/tasks/t0").json()["status"] == "pending"
    missing = client.get("/tasks/zzz")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "task_not_found"


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_bad_mode_is_422(client: TestClient) -> None:
    response = client.post("/predict/echo?mode=later", json={"data": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "mode"


def test_model_description_and_unknown_model(client: TestClient) -> None:
    described = client.get("/models/echo")
    assert described.status_code == 200
    assert described.json()["example_request"] == {"data": "x"}
    missing = client.get("/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["model"] == "nope"


def test_models_are_listed_typed(client: TestClient) -> None:
    listed = client.get("/models").json()
    assert listed == [
        {
            "name": "echo",
            "status": "alive",
            "version": "1",
            "instances": 1,
            "queue": "conveyor.model.echo",
        }
    ]


def test_an_unexpected_exception_is_a_json_500_not_plain_text(client: TestClient) -> None:
    async def broken(*args: object) -> str:
        raise RuntimeError("the dispatcher broke")

    client.app.state.dispatcher.submit = broken  # type: ignore[attr-defined]
    quiet = TestClient(client.app, raise_server_exceptions=False)
    response = quiet.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "internal"
    assert "broke" not in response.text  # the details go to the log, not to the client


def test_an_unreadable_worker_response_is_a_json_502(client: TestClient) -> None:
    def garbage(payload: bytes) -> task_pb2.TaskResult:
        return task_pb2.TaskResult(model="echo", response=b"\xff\xff\xff")

    client.app.state.dispatcher.responder = garbage  # type: ignore[attr-defined]
    response = client.post("/predict/echo", json={"data": "x"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_result"
