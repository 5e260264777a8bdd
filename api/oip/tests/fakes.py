"""In-memory stand-ins for the catalog, the dispatcher and the workers' statistics, and a
gateway app built on them.

They follow the interface the v2 routes code against (``api.oip.ports``): a catalog that
resolves versions and lists models, a dispatcher with ``run`` and ``stream``, statistics by
model version. ``echo`` and ``iris`` answer like model_a and model_b do (iris with a fixed rule,
not the trained classifier); ``text_model`` follows the text-generation contract as model_c
does, and ``words`` streams a word a piece for it, the same words for the same seed.
``affine_model`` is a tensor model (declared tensors, ``declared.proto``) and ``affine`` its
answer: ``AFFINE`` times each row of ``x``, and a word per row and per image.
"""

import asyncio
import math
import random
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fastapi import FastAPI

from api.catalog import ModelInfo
from api.config import Settings
from api.exceptions import ModelNotFound
from api.main import create_app
from api.oip.catalog_extensions import Extensions
from api.oip.tests import declared_pb2, text_pb2
from api.pieces import StreamItem
from conveyor.descriptors import file_descriptor_set, load_pool, message_class
from conveyor.protocol import STREAM_FEATURE, TEXT_GENERATION_FEATURE, durable_queue
from conveyor.registry_api import ModelSummary, VersionSummary
from conveyor.streams import Chunk, Restart
from proto import model_a_pb2, model_b_pb2, task_pb2


def model_a(name: str = "model_a", versions: tuple[str, ...] = ("1",)) -> list[ModelInfo]:
    """Every version of an echo model."""
    return [
        ModelInfo(name, v, versions, 1, model_a_pb2.ModelARequest, model_a_pb2.ModelAResponse)
        for v in versions
    ]


def model_b(name: str = "model_b", versions: tuple[str, ...] = ("1", "2")) -> list[ModelInfo]:
    """Every version of an iris classifier."""
    return [
        ModelInfo(name, v, versions, 1, model_b_pb2.ModelBRequest, model_b_pb2.ModelBResponse)
        for v in versions
    ]


def text_model(
    name: str = "model_t", versions: tuple[str, ...] = ("1",), instances: int = 1
) -> list[ModelInfo]:
    """Every version of a text generator that streams (features stream and text-generation)."""
    features = frozenset({STREAM_FEATURE, TEXT_GENERATION_FEATURE})
    return [
        ModelInfo(
            name, v, versions, instances, text_pb2.TextRequest, text_pb2.TextResponse, features
        )
        for v in versions
    ]


def affine_model(name: str = "affine", max_batch_size: int = 0) -> list[ModelInfo]:
    """A tensor model's one version, its message classes rebuilt from a descriptor set as the
    gateway's catalog rebuilds them."""
    request, response = declared_pb2.Affine.DESCRIPTOR, declared_pb2.AffineResult.DESCRIPTOR
    pool = load_pool(file_descriptor_set(request, response))
    request_class = message_class(pool, request.full_name)
    response_class = message_class(pool, response.full_name)
    return [
        ModelInfo(
            name, "1", ("1",), 1, request_class, response_class, max_batch_size=max_batch_size
        )
    ]


AFFINE = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (2.0, -1.0))
"""The 4 x 2 matrix ``affine`` multiplies each row of ``x`` by."""


def affine_rows(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each row (of four) times ``AFFINE``."""
    return [[sum(r[i] * AFFINE[i][j] for i in range(4)) for j in range(2)] for r in rows]


def affine(model: ModelInfo, payload: bytes) -> task_pb2.TaskResult:
    """The tensor model: ``y`` is ``x`` times ``AFFINE`` (FP32 [n, 2] for [n, 4]); ``words``
    holds ``row <i>`` per row of ``x`` then ``image <j>: <sum of its bytes>`` per image."""
    request = declared_pb2.Affine.FromString(payload)
    count = request.x.shape[0] if request.HasField("x") else 0
    values = struct.unpack(f"<{count * 4}f", request.x.raw)
    y = affine_rows([values[i * 4 : i * 4 + 4] for i in range(count)])
    words = [f"row {i}" for i in range(count)]
    if request.HasField("image"):
        size = 2 * 2 * 3
        raw = request.image.raw
        words += [
            f"image {j}: {sum(raw[j * size : (j + 1) * size])}" for j in range(len(raw) // size)
        ]
    response = declared_pb2.AffineResult()
    response.y.shape.extend([count, 2])
    response.y.raw = struct.pack(f"<{count * 2}f", *(v for row in y for v in row))
    response.words.shape.append(len(words))
    response.words.raw = b"".join(struct.pack("<I", len(w)) + w.encode() for w in words)
    return task_pb2.TaskResult(model=model.name, response=response.SerializeToString())


class FakeCatalog:
    """Resolves ``name`` (and ``version``; default: the highest live one, else the highest)."""

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self.models = {(m.name, m.version): m for m in models}
        self.registry_up = True

    def put(self, model: ModelInfo) -> None:
        """Add or replace a model version."""
        self.models[(model.name, model.version)] = model

    async def get(self, name: str, version: str | None = None) -> ModelInfo:
        versions = sorted((m for (n, _), m in self.models.items() if n == name), key=_order)
        if not versions:
            raise ModelNotFound(f"unknown model {name!r}", model=name)
        if version is None:
            live = [m for m in versions if m.alive]
            return (live or versions)[-1]
        for model in versions:
            if model.version == version:
                return model
        raise ModelNotFound(f"model {name!r} has no version {version!r}", model=name)

    async def ping(self) -> bool:
        return self.registry_up

    async def list(self) -> list[ModelSummary]:
        """Every model, by name, as the registry lists it (default version and every one)."""
        summaries = []
        for name in sorted({n for n, _ in self.models}):
            versions = sorted((m for (n, _), m in self.models.items() if n == name), key=_order)
            default = _summary(await self.get(name))
            summaries.append(
                ModelSummary(
                    name=name,
                    **default.model_dump(),
                    versions=[_summary(m) for m in versions],
                )
            )
        return summaries


def _summary(model: ModelInfo) -> VersionSummary:
    return VersionSummary(
        version=model.version,
        status="alive" if model.alive else "dead",
        instances=model.instances,
        queue=durable_queue(model.name, model.version),
        features=sorted(model.features) if model.alive else [],
        max_batch_size=model.max_batch_size,
    )


@dataclass
class FakeStats:
    """The workers' statistics hashes: counters by field name per ``(model, version)``."""

    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    error: Exception | None = None
    reads: list[list[tuple[str, str]]] = field(default_factory=list)

    async def read(self, versions: Sequence[tuple[str, str]]) -> list[dict[str, int]]:
        self.reads.append(list(versions))
        if self.error is not None:
            raise self.error
        return [dict(self.counts.get(version, {})) for version in versions]


def _order(model: ModelInfo) -> tuple[int, str]:
    return (int(model.version), "") if model.version.isdigit() else (-1, model.version)


Responder = Callable[[ModelInfo, bytes], task_pb2.TaskResult]


@dataclass
class Run:
    """One ``Dispatcher.run`` call."""

    model: ModelInfo
    payload: bytes
    timeout: float
    priority: int
    request_id: str


def echo(model: ModelInfo, payload: bytes) -> task_pb2.TaskResult:
    """model_a: ``reply = "Processed message: " + data``."""
    data = model_a_pb2.ModelARequest.FromString(payload).data
    reply = model_a_pb2.ModelAResponse(reply=f"Processed message: {data}")
    return task_pb2.TaskResult(model=model.name, response=reply.SerializeToString())


IRIS_CLASSES = ("setosa", "versicolor", "virginica")


def iris(model: ModelInfo, payload: bytes) -> task_pb2.TaskResult:
    """model_b with a fixed rule on petal length: < 2.5 setosa, < 4.9 versicolor, else
    virginica; four features or an INVALID_ARGUMENT error, as the real model."""
    features = list(model_b_pb2.ModelBRequest.FromString(payload).features)
    if len(features) != 4:
        error = task_pb2.TaskError(
            code=task_pb2.TaskError.INVALID_ARGUMENT,
            message=f"expected 4 features, got {len(features)}",
            field="features",
        )
        return task_pb2.TaskResult(model=model.name, error=error)
    petal = features[2]
    winner = 0 if petal < 2.5 else 1 if petal < 4.9 else 2
    scores = [math.exp(3.0 if i == winner else 0.0) for i in range(3)]
    total = sum(scores)
    response = model_b_pb2.ModelBResponse(
        label=IRIS_CLASSES[winner],
        probabilities={name: s / total for name, s in zip(IRIS_CLASSES, scores, strict=True)},
    )
    return task_pb2.TaskResult(model=model.name, response=response.SerializeToString())


@dataclass(frozen=True)
class StreamEnd:
    """The end of a stream, as ``api.streaming.StreamEnd``: the task's result."""

    result: task_pb2.TaskResult


Script = Callable[[ModelInfo, bytes], list[StreamItem]]
"""What a fake stream yields for a model and a request: pieces, restarts, then an end."""

VOCABULARY = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "again")


def word_list(payload: bytes) -> list[str]:
    """The words ``words`` generates for a request: ``max_tokens`` of them (16 without),
    each with its leading space, picked by ``seed``."""
    request = text_pb2.TextRequest.FromString(payload)
    count = request.max_tokens if request.HasField("max_tokens") else 16
    pick = random.Random(request.seed)
    return [" " + pick.choice(VOCABULARY) for _ in range(count)]


def pieces(texts: Sequence[str], attempt: int = 1, first_id: int = 1) -> list[StreamItem]:
    """A run's pieces, one ``text`` each, with event ids from ``first_id``."""
    return [
        Chunk(f"{first_id + i}-0", i, attempt, text_pb2.TextResponse(text=t).SerializeToString())
        for i, t in enumerate(texts)
    ]


def done(model: ModelInfo, texts: Sequence[str]) -> StreamEnd:
    """A done end: the pieces combined."""
    response = text_pb2.TextResponse(text="".join(texts))
    return StreamEnd(task_pb2.TaskResult(model=model.name, response=response.SerializeToString()))


def failed(model: ModelInfo, message: str = "the model failed") -> StreamEnd:
    """A failed end."""
    error = task_pb2.TaskError(code=task_pb2.TaskError.MODEL_ERROR, message=message)
    return StreamEnd(task_pb2.TaskResult(model=model.name, error=error))


def words(model: ModelInfo, payload: bytes) -> list[StreamItem]:
    """A text model's stream: a word a piece (``word_list``), then the end."""
    texts = word_list(payload)
    return [*pieces(texts), done(model, texts)]


def restarted_after(count: int) -> Script:
    """A stream whose worker dies after ``count`` pieces: a restart, then the whole run again
    (the same words: the same seed)."""

    def script(model: ModelInfo, payload: bytes) -> list[StreamItem]:
        texts = word_list(payload)
        first = pieces(texts[:count])
        again = pieces(texts, attempt=2, first_id=count + 2)
        return [*first, Restart(f"{count + 1}-0", 2), *again, done(model, texts)]

    return script


def one_piece(responder: Responder) -> Script:
    """A model that does not stream: its one response as one piece, then the end (as the
    worker's default ``process_stream`` does)."""

    def script(model: ModelInfo, payload: bytes) -> list[StreamItem]:
        result = responder(model, payload)
        if result.WhichOneof("outcome") != "response":
            return [StreamEnd(result)]
        return [Chunk("1-0", 0, 1, result.response), StreamEnd(result)]

    return script


@dataclass
class FakeDispatcher:
    """Runs tasks at once through a responder per model; records every call."""

    responders: dict[str, Responder] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    error: Exception | None = None
    brokers_up: bool = True
    scripts: dict[str, Script] = field(default_factory=dict)
    """What ``stream`` yields per model (else the responder's answer as one piece)."""
    streams: list[Run] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    """The streams (their place in ``streams``) closed before their end: asked to stop."""
    gap: float = 0.0
    """Seconds before each item of a stream."""

    async def stream(
        self,
        info: ModelInfo,
        payload: bytes,
        *,
        seconds: float,
        priority: int = 0,
        request_id: str = "",
        max_retries: int | None = None,
    ) -> AsyncIterator[StreamItem]:
        """Yield the model's script; raise ``error`` (when set) before the first item."""
        self.streams.append(Run(info, payload, seconds, priority, request_id))
        number = len(self.streams) - 1
        if self.error is not None:
            raise self.error
        script = self.scripts.get(info.name) or one_piece(self.responders[info.name])
        ended = False
        try:
            for item in script(info, payload):
                if self.gap:
                    await asyncio.sleep(self.gap)
                yield item
            ended = True
        finally:
            if not ended:
                self.stopped.append(number)

    async def run(
        self,
        info: ModelInfo,
        payload: bytes,
        *,
        seconds: float,
        priority: int,
        request_id: str,
    ) -> task_pb2.TaskResult:
        self.runs.append(Run(info, payload, seconds, priority, request_id))
        if self.error is not None:
            raise self.error
        responder = self.responders.get(info.name)
        if responder is None:  # a streaming model: its stream's result
            end = self.scripts[info.name](info, payload)[-1]
            assert isinstance(end, StreamEnd)
            result = end.result
        else:
            result = responder(info, payload)
        result.task_id = f"t{len(self.runs)}"
        return result

    async def ready(self) -> dict[str, bool]:
        return {"rabbitmq": self.brokers_up, "redis": self.brokers_up}


def fake_gateway(
    catalog: FakeCatalog | None = None,
    dispatcher: FakeDispatcher | None = None,
    stats: FakeStats | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The real gateway app with fakes in its state (run it without its lifespan); its
    extensions are the real ``Extensions`` over the fake catalog and statistics.

    Without arguments: model_a (version 1, echo) and model_b (versions 1 and 2, iris).
    """
    settings = settings or Settings(default_timeout=5.0, max_timeout=60.0)
    app = create_app(settings)
    app.state.settings = settings
    app.state.catalog = catalog or FakeCatalog([*model_a(), *model_b()])
    app.state.dispatcher = dispatcher or FakeDispatcher({"model_a": echo, "model_b": iris})
    app.state.stats = stats or FakeStats()
    app.state.extensions = Extensions(app.state.catalog, app.state.stats)
    return app
