"""Conveyor's Prometheus metrics: the series every service exports, defined once.

Each service builds its set on a registry of its own (``new_registry()``), so an application
built twice (tests) does not register a series twice. Label values are bound once per model
version and cached: a request pays a dictionary lookup, a counter increment and a histogram
observation.

Series (``docs/observability.md`` lists them with their labels):

- gateway: ``conveyor_requests_total``, ``conveyor_request_duration_seconds``,
  ``conveyor_inflight_requests``, ``conveyor_rejected_requests_total``,
  ``conveyor_tasks_cancelled_total``, ``conveyor_queued_tasks``, ``conveyor_dead_letter_tasks``,
  ``conveyor_callbacks_total``, ``conveyor_callback_duration_seconds``,
  ``conveyor_stream_first_chunk_seconds``, ``conveyor_stream_chunks_total``,
  ``conveyor_streams_open``, ``conveyor_streams_cancelled_total``;
- registry: ``conveyor_live_instances``;
- worker: ``conveyor_tasks_total``, ``conveyor_task_queue_seconds``,
  ``conveyor_task_model_seconds``, ``conveyor_batch_size``, ``conveyor_tasks_expired_total``,
  ``conveyor_tasks_dead_lettered_total``, ``conveyor_task_retries_total``,
  ``conveyor_worker_unsettled_tasks``.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from proto import task_pb2

__all__ = [
    "BATCH_BUCKETS",
    "CONTENT_TYPE",
    "GATEWAY_SHARED_GAUGES",
    "LATENCY_BUCKETS",
    "GatewayMetrics",
    "RegistryMetrics",
    "RequestSeries",
    "StreamSeries",
    "WorkerMetrics",
    "exposition",
    "negotiated",
    "new_registry",
    "outcome_of",
    "serve",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of ``exposition()``'s text."""

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
)  # fmt: skip
"""Histogram buckets (seconds) of latencies: a millisecond to the largest timeout."""

GATEWAY_SHARED_GAUGES = frozenset({"conveyor_queued_tasks", "conveyor_dead_letter_tasks"})
"""The gateway's gauges that read one shared thing (RabbitMQ's queues): merged over its
processes by the largest reading, not summed (``conveyor.sibling_metrics``)."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
"""Histogram buckets of batch sizes."""


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and garbage-collector series."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's series in Prometheus' text format (serve with ``CONTENT_TYPE``)."""
    return generate_latest(registry)


def negotiated(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry's series in the format the scraper's ``Accept`` asks for: OpenMetrics
    (which carries the histograms' exemplars: trace ids) for ``application/openmetrics-text``,
    else Prometheus' text format. Returns the body and its ``Content-Type``."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def serve(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> bool:
    """Serve ``/metrics`` from ``registry`` on ``host:port`` in a thread (a worker's endpoint);
    False when the port is taken."""
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError:
        return False
    return True


def outcome_of(status: int) -> str:
    """The ``outcome`` label of an HTTP status: ok, rejected, timeout, client_error, error."""
    if status < 400:
        return "ok"
    if status == 429:
        return "rejected"
    if status == 504:
        return "timeout"
    return "client_error" if status < 500 else "error"


class Buckets:
    """One histogram's numbers, plain: a count per bucket (``+Inf`` last; not cumulative), the
    sum, and the last traced observation of each bucket (its exemplar: a trace id).

    Not locked: a service updates them from its one event loop. A scrape on another thread (a
    worker's ``/metrics``) reads a copy; as with prometheus_client's own histograms, the sum
    and the counts it reads may differ by the observation in progress.
    """

    __slots__ = ("bounds", "counts", "exemplars", "les", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.les = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        """Each bucket's ``le`` label, +Inf last."""
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.exemplars: dict[int, Exemplar] = {}

    def observe(self, value: float, trace_id: str = "") -> None:
        """Count ``value`` in the first bucket whose bound is at least it (Prometheus' ``le``);
        ``trace_id``: its trace, kept as that bucket's exemplar."""
        bucket = bisect_left(self.bounds, value)
        self.counts[bucket] += 1
        self.sum += value
        if trace_id:
            self.exemplars[bucket] = Exemplar({"trace_id": trace_id}, value, time.time())

    @property
    def count(self) -> int:
        """Observations counted."""
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        """Observations at or under each bucket's bound (``le``), +Inf last."""
        return list(itertools.accumulate(list(self.counts)))

    def add_to(self, family: HistogramMetricFamily, labels: Sequence[str]) -> None:
        """Add these numbers to ``family`` as its series of ``labels``."""
        exemplars, les = dict(self.exemplars), self.les
        family.add_metric(
            list(labels),
            [
                (les[i], float(n), exemplars[i]) if i in exemplars else (les[i], float(n))
                for i, n in enumerate(self.cumulative())
            ],
            self.sum,
        )


class RequestSeries:
    """The gateway's counts of one (endpoint, model, version): plain numbers, exported at
    scrape time by ``GatewayMetrics``' collector.

    Not locked: the gateway updates and exports them from its one event loop. A request costs
    a few dictionary and list updates (a prometheus_client child's ``inc`` and ``observe``
    take a lock each and cost several times more).
    """

    __slots__ = ("by_outcome", "endpoint", "latency", "model", "rejected", "version")

    def __init__(self, endpoint: str, model: str, version: str) -> None:
        self.endpoint = endpoint
        self.model = model
        self.version = version
        self.by_outcome: dict[str, int] = {}
        self.latency = Buckets(LATENCY_BUCKETS)
        self.rejected: dict[str, int] = {}

    def observe(
        self, status: int, seconds: float, reason: str = "queue_full", trace_id: str = ""
    ) -> None:
        """Count one request that ended with ``status`` after ``seconds`` (``trace_id``: its
        trace, kept as its latency bucket's exemplar)."""
        outcome = _OUTCOMES.get(status) or outcome_of(status)
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
        self.latency.observe(seconds, trace_id)
        if status == 429:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1

    @property
    def count(self) -> int:
        """Requests counted."""
        return self.latency.count

    def cumulative(self) -> list[int]:
        """Requests at or under each bucket's bound (``le``), +Inf last."""
        return self.latency.cumulative()


_OUTCOMES = {status: outcome_of(status) for status in (200, 202, 404, 422, 429, 500, 503, 504)}


class _RequestCollector(Collector):
    """Exports the gateway's request series from their plain numbers."""

    def __init__(self, series: dict[tuple[str, str, str], RequestSeries]) -> None:
        self._series = series

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "conveyor_requests",
            "HTTP requests answered by the gateway, by model, version, endpoint and outcome.",
            labels=["model", "version", "endpoint", "outcome"],
        )
        latency = HistogramMetricFamily(
            "conveyor_request_duration_seconds",
            "End-to-end latency of gateway requests, from arrival to the response.",
            labels=["model", "version", "endpoint"],
        )
        rejected = CounterMetricFamily(
            "conveyor_rejected_requests",
            "Requests refused with 429: reason gateway_full (MAX_INFLIGHT) or queue_full.",
            labels=["model", "version", "reason"],
        )
        for s in list(self._series.values()):
            for outcome, count in s.by_outcome.items():
                requests.add_metric([s.model, s.version, s.endpoint, outcome], count)
            s.latency.add_to(latency, (s.model, s.version, s.endpoint))
            for reason, count in s.rejected.items():
                rejected.add_metric([s.model, s.version, reason], count)
        yield requests
        yield latency
        yield rejected


class GatewayMetrics:
    """The gateway's series: requests, latency, in-flight, rejections, cancels, queues,
    callbacks, streams."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self._series: dict[tuple[str, str, str], RequestSeries] = {}
        self._streams: dict[tuple[str, str], StreamSeries] = {}
        self.registry.register(_RequestCollector(self._series))
        self.inflight = Gauge(
            "conveyor_inflight_requests",
            "Requests the gateway is working on.",
            registry=self.registry,
        )
        self.cancelled = Counter(
            "conveyor_tasks_cancelled",
            "Tasks cancelled while queued (DELETE /tasks/{id}).",
            ["model", "version"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "conveyor_queued_tasks",
            "Ready tasks in a model version's queues (all lanes), as RabbitMQ last reported.",
            ["model", "version"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "conveyor_dead_letter_tasks",
            "Tasks waiting in a model's dead-letter queue, as RabbitMQ last reported.",
            ["model"],
            registry=self.registry,
        )
        self.callbacks = Counter(
            "conveyor_callbacks",
            "Callback attempts settled, by outcome: delivered, retried (failed, tried again "
            "later) or undeliverable (failed its last attempt).",
            ["outcome"],
            registry=self.registry,
        )
        self.callback_seconds = Histogram(
            "conveyor_callback_duration_seconds",
            "Time one callback POST took, to the receiver's answer, a failure or the timeout.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stream_first_chunk = Histogram(
            "conveyor_stream_first_chunk_seconds",
            "Time from publishing a streamed task to its first piece (synchronous streams), or "
            "from starting to follow a task to the first piece read.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stream_chunks = Counter(
            "conveyor_stream_chunks",
            "Pieces of streamed responses handed to clients (their rate: pieces per second).",
            ["model", "version"],
            registry=self.registry,
        )
        self.streams_open = Gauge(
            "conveyor_streams_open",
            "Streams open: clients reading a task's pieces.",
            ["model", "version"],
            registry=self.registry,
        )
        self.streams_cancelled = Counter(
            "conveyor_streams_cancelled",
            "Synchronous streams whose client went away before the end (the worker is asked "
            "to stop).",
            ["model", "version"],
            registry=self.registry,
        )

    def stream_series(self, model: str, version: str) -> StreamSeries:
        """The stream series of one model version, bound (created on first use)."""
        key = (model, version)
        found = self._streams.get(key)
        if found is None:
            found = self._streams[key] = StreamSeries(self, model, version)
        return found

    def series(self, endpoint: str, model: str = "", version: str = "") -> RequestSeries:
        """The series of one endpoint and model version (created on first use)."""
        key = (endpoint, model, version)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = RequestSeries(endpoint, model, version)
        return found

    def all_series(self) -> list[RequestSeries]:
        """Every request series so far."""
        return list(self._series.values())

    def track_inflight(self, read: Callable[[], float]) -> None:
        """Report ``read()`` as the in-flight gauge at each scrape (nothing per request)."""
        self.inflight.set_function(read)

    def set_queues(
        self, depths: Iterable[tuple[str, str, int]], dead_letters: Iterable[tuple[str, int]]
    ) -> None:
        """Replace the queue gauges: (model, version, ready tasks) and (model, dead letters)."""
        self.queued.clear()
        for model, version, queued in depths:
            self.queued.labels(model, version).set(queued)
        self.dead_letters.clear()
        for model, dead in dead_letters:
            self.dead_letters.labels(model).set(dead)


class StreamSeries:
    """The stream series of one model version, bound once (``GatewayMetrics.stream_series``)."""

    __slots__ = ("cancelled", "chunks", "first_chunk", "open")

    def __init__(self, metrics: GatewayMetrics, model: str, version: str) -> None:
        self.first_chunk = metrics.stream_first_chunk.labels(model, version)
        self.chunks = metrics.stream_chunks.labels(model, version)
        self.open = metrics.streams_open.labels(model, version)
        self.cancelled = metrics.streams_cancelled.labels(model, version)


class RegistryMetrics:
    """The registry's series: live instances per model version."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.live_instances = Gauge(
            "conveyor_live_instances",
            "Live worker instances of a model version.",
            ["model", "version"],
            registry=self.registry,
        )

    def set_instances(self, instances: Iterable[tuple[str, str, int]]) -> None:
        """Replace the gauge: (model, version, live instances)."""
        self.live_instances.clear()
        for model, version, count in instances:
            self.live_instances.labels(model, version).set(count)


_ERROR_CODES = {
    value: name.lower() for name, value in task_pb2.TaskError.Code.items() if value != 0
}


class WorkerMetrics:
    """A worker's series, bound to its model version.

    The series every task touches (``conveyor_tasks_total``, the queue and model times, the
    batch sizes, the tasks per message) are plain numbers (``Buckets``, a dict of fixed keys)
    exported at scrape time; the rare ones are prometheus_client's children.
    """

    def __init__(self, model: str, version: str, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else new_registry()
        labels = ("model", "version")
        self.labels = (model, version)
        self.outcomes: dict[str, int] = dict.fromkeys(["ok", *_ERROR_CODES.values()], 0)
        """Tasks answered, by outcome: ``ok`` or the error code in lower case (fixed keys)."""
        self.queue_seconds = Buckets(LATENCY_BUCKETS)
        self.model_seconds = Buckets(LATENCY_BUCKETS)
        self.batch_sizes = Buckets(BATCH_BUCKETS)
        self.tasks_per_message = Buckets(BATCH_BUCKETS)
        self.registry.register(_TaskCollector(self))
        self.expired = Counter(
            "conveyor_tasks_expired",
            "Tasks answered DEADLINE_EXCEEDED: their deadline passed while they were queued.",
            labels,
            registry=self.registry,
        ).labels(model, version)
        self.dead_lettered = Counter(
            "conveyor_tasks_dead_lettered",
            "Tasks moved to the dead-letter queue after killing their workers too often.",
            labels,
            registry=self.registry,
        ).labels(model, version)
        self.retries = Counter(
            "conveyor_task_retries",
            "Retries scheduled: tasks that failed retryably and wait in the delay lane to run "
            "again (each attempt counts; the task's final outcome counts in conveyor_tasks).",
            labels,
            registry=self.registry,
        ).labels(model, version)
        self.stream_chunks = Counter(
            "conveyor_worker_stream_chunks",
            "Pieces of streamed responses the model yielded (each appended to its task's event "
            "stream and pushed to its gateway).",
            labels,
            registry=self.registry,
        ).labels(model, version)
        stopped = Counter(
            "conveyor_worker_streams_stopped",
            "Streams the worker stopped before the model's end, by reason: client (the gateway "
            "asked: its client went away), deadline, limit (MAX_STREAM_CHUNKS).",
            [*labels, "reason"],
            registry=self.registry,
        )
        self.streams_stopped = {
            reason: stopped.labels(model, version, reason)
            for reason in ("client", "deadline", "limit")
        }
        """The stopped streams' counter by reason."""
        self.unsettled = Gauge(
            "conveyor_worker_unsettled_tasks",
            "Messages delivered to this worker and not yet acknowledged (a TaskBatch counts once).",
            labels,
            registry=self.registry,
        ).labels(model, version)

    def observe(
        self,
        tasks: Sequence[task_pb2.Task],
        results: Sequence[task_pb2.TaskResult],
        trace_ids: Sequence[str] | None = None,
    ) -> None:
        """Count a batch of answered tasks: outcomes, time in queue and in the model.
        ``trace_ids`` (one per task, empty: not traced) become the latency histograms'
        exemplars."""
        ran = 0
        outcomes = self.outcomes
        for i, (task, result) in enumerate(zip(tasks, results, strict=True)):
            trace_id = trace_ids[i] if trace_ids else ""
            started = result.started_unix_ms
            if result.HasField("error"):
                code = result.error.code
                outcomes[_ERROR_CODES.get(code, "model_error")] += 1
                if code == task_pb2.TaskError.DEADLINE_EXCEEDED and not started:
                    self.expired.inc()  # not a stream that ran past its deadline
            else:
                outcomes["ok"] += 1
            if started:
                ran += 1
                if task.created_unix_ms:
                    queued = started - task.created_unix_ms
                    self.queue_seconds.observe(max(queued, 0) / 1000, trace_id)
                running = result.finished_unix_ms - started
                self.model_seconds.observe(max(running, 0) / 1000, trace_id)
        if ran:
            self.batch_sizes.observe(ran)

    def track_unsettled(self, read: Callable[[], float]) -> None:
        """Report ``read()`` as the unsettled-tasks gauge at each scrape."""
        self.unsettled.set_function(read)


class _TaskCollector(Collector):
    """Exports a worker's per-task series from their plain numbers."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        labels = ["model", "version"]
        tasks = CounterMetricFamily(
            "conveyor_tasks",
            "Tasks a worker answered, by outcome: ok or the error code in lower case.",
            labels=[*labels, "outcome"],
        )
        for outcome, count in list(m.outcomes.items()):
            tasks.add_metric([*m.labels, outcome], count)
        yield tasks
        for name, documentation, numbers in (
            (
                "conveyor_task_queue_seconds",
                "Time from a task's creation by the gateway to the model starting on it.",
                m.queue_seconds,
            ),
            (
                "conveyor_task_model_seconds",
                "Time the model spent on a task (on its whole batch, when batching).",
                m.model_seconds,
            ),
            ("conveyor_batch_size", "Tasks per model call.", m.batch_sizes),
            (
                "conveyor_tasks_per_message",
                "Tasks each delivered message carried (more than one: a gateway's TaskBatch).",
                m.tasks_per_message,
            ),
        ):
            family = HistogramMetricFamily(name, documentation, labels=labels)
            numbers.add_to(family, m.labels)
            yield family
