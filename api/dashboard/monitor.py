"""The gateway's monitor: samples the registry, the queues and its own metrics every few seconds.

Each sample refreshes the queue gauges of ``GET /metrics`` and adds a point to a rolling
history (ten minutes by default) from which ``GET /dashboard/data`` reports, per model, its
versions and live instances, queue depth, request rate, p50 and p99 latency, errors,
rejections and dead letters, its streams (open, pieces per second, time to the first piece,
cancelled by disconnect), with the recent points for the page's charts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from api.catalog import ModelCatalog
from api.dispatch import Dispatcher
from api.exceptions import RegistryUnavailable
from conveyor.metrics import LATENCY_BUCKETS, GatewayMetrics
from conveyor.registry_api import ModelSummary

__all__ = ["Monitor", "quantile"]

logger = logging.getLogger(__name__)


_MODEL_ENDPOINTS = frozenset({"predict", "v2_infer", "grpc_infer"})
_ERROR_OUTCOMES = frozenset({"error", "timeout"})
_LE = [*(str(float(bound)) for bound in LATENCY_BUCKETS), "+Inf"]
"""The ``le`` labels of a histogram over ``LATENCY_BUCKETS``, in order."""
_RATE_WINDOW = 10.0
_LATENCY_WINDOW = 60.0


@dataclass
class _Counts:
    """One model's cumulative counts at a sample."""

    requests: float = 0.0
    errors: float = 0.0
    rejected: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * (len(LATENCY_BUCKETS) + 1))
    streams_open: float = 0.0
    chunks: float = 0.0
    streams_cancelled: float = 0.0
    first_chunk: list[float] = field(default_factory=lambda: [0.0] * (len(LATENCY_BUCKETS) + 1))


@dataclass(frozen=True)
class _Sample:
    time: float
    counts: dict[str, _Counts]
    queued: dict[str, int]


def quantile(q: float, buckets: list[float]) -> float | None:
    """The ``q`` quantile (seconds) of a cumulative histogram over ``LATENCY_BUCKETS`` (+Inf
    last), interpolated within its bucket as Prometheus' ``histogram_quantile`` does."""
    total = buckets[-1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(LATENCY_BUCKETS, buckets, strict=False):
        if count >= rank:
            width = count - lower_count
            share = (rank - lower_count) / width if width > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return LATENCY_BUCKETS[-1]


def _minus(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


class Monitor:
    """Samples every ``interval`` seconds while running; serves the dashboard's figures."""

    def __init__(
        self,
        catalog: ModelCatalog,
        dispatcher: Dispatcher | None,
        metrics: GatewayMetrics,
        interval: float = 2.0,
        history_seconds: float = 600.0,
    ) -> None:
        self.catalog = catalog
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.interval = interval
        self._history: deque[_Sample] = deque(maxlen=max(2, int(history_seconds / interval) + 1))
        self._models: list[ModelSummary] = []
        self._depths: dict[tuple[str, str], int] = {}
        self._dead: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sample in the background until ``stop``."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:
                logger.exception("the monitor's sample failed")
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        """Read the registry and the queues, refresh the gauges, add a point to the history."""
        try:
            self._models = await self.catalog.list()
        except RegistryUnavailable:
            pass  # keep the last list; the catalog logs the outage, once, and its end
        except Exception as e:
            logger.warning("monitor: cannot list models, keeping the last list: %s", e)
        depths: dict[tuple[str, str], int] = {}
        dead: dict[str, int] = {}
        if self.dispatcher is not None:
            for model in self._models:
                for version in model.versions:
                    found = await self.dispatcher.queue_depths(model.name, version.version)
                    if found is not None:
                        depths[model.name, version.version] = found.queued
                        dead[model.name] = found.dead_letters
        self._depths, self._dead = depths, dead
        self.metrics.set_queues(
            ((m, v, n) for (m, v), n in depths.items()), dead.items()
        )  # fmt: skip
        queued: dict[str, int] = {}
        for (model_name, _), count in depths.items():
            queued[model_name] = queued.get(model_name, 0) + count
        self._history.append(_Sample(time.time(), self._counts(), queued))

    def _counts(self) -> dict[str, _Counts]:
        counts: dict[str, _Counts] = {}
        for series in self.metrics.all_series():
            if not series.model:
                continue
            entry = counts.setdefault(series.model, _Counts())
            for outcome, count in series.by_outcome.items():
                entry.requests += count
                if outcome in _ERROR_OUTCOMES:
                    entry.errors += count
                elif outcome == "rejected":
                    entry.rejected += count
            if series.endpoint in _MODEL_ENDPOINTS:
                entry.buckets = [
                    a + b for a, b in zip(entry.buckets, series.cumulative(), strict=True)
                ]
        self._stream_counts(counts)
        return counts

    def _stream_counts(self, counts: dict[str, _Counts]) -> None:
        """Add each model's stream series (all versions) to ``counts``."""
        metrics = self.metrics
        sums = (
            (metrics.streams_open, "conveyor_streams_open", "streams_open"),
            (metrics.stream_chunks, "conveyor_stream_chunks_total", "chunks"),
            (metrics.streams_cancelled, "conveyor_streams_cancelled_total", "streams_cancelled"),
        )
        for collector, name, attribute in sums:
            for family in collector.collect():
                for sample in family.samples:
                    if sample.name == name and sample.labels.get("model"):
                        entry = counts.setdefault(sample.labels["model"], _Counts())
                        setattr(entry, attribute, getattr(entry, attribute) + sample.value)
        bounds = {bound: i for i, bound in enumerate(_LE)}
        for family in metrics.stream_first_chunk.collect():
            for sample in family.samples:
                index = bounds.get(sample.labels.get("le", ""))
                if sample.name.endswith("_bucket") and index is not None:
                    entry = counts.setdefault(sample.labels["model"], _Counts())
                    entry.first_chunk[index] += sample.value

    def _since(self, seconds: float) -> _Sample | None:
        """The oldest sample within the last ``seconds`` before the latest (None if < 2)."""
        if len(self._history) < 2:
            return None
        latest = self._history[-1].time
        chosen = self._history[-2]
        for sample in reversed(self._history):
            if latest - sample.time > seconds:
                break
            chosen = sample
        return chosen if chosen is not self._history[-1] else self._history[-2]

    def data(self) -> dict[str, Any]:
        """The dashboard's figures (``GET /dashboard/data``)."""
        latest = self._history[-1] if self._history else None
        rate_from = self._since(_RATE_WINDOW)
        latency_from = self._since(_LATENCY_WINDOW)
        models = []
        for model in self._models:
            now = latest.counts.get(model.name, _Counts()) if latest else _Counts()
            rate = chunk_rate = None
            if latest and rate_from:
                before = rate_from.counts.get(model.name, _Counts())
                seconds = max(latest.time - rate_from.time, 1e-3)
                rate = (now.requests - before.requests) / seconds
                chunk_rate = (now.chunks - before.chunks) / seconds
            window, first_chunk = now.buckets, now.first_chunk
            if latency_from:
                earlier = latency_from.counts.get(model.name, _Counts())
                window = _minus(now.buckets, earlier.buckets)
                first_chunk = _minus(now.first_chunk, earlier.first_chunk)
            models.append(
                {
                    "name": model.name,
                    "default_version": model.version,
                    "status": model.status,
                    "instances": sum(v.instances for v in model.versions),
                    "versions": [
                        {
                            "version": v.version,
                            "status": v.status,
                            "instances": v.instances,
                            "queued": self._depths.get((model.name, v.version)),
                        }
                        for v in model.versions
                    ],
                    "queued": sum(n for (m, _), n in self._depths.items() if m == model.name),
                    "dead_letters": self._dead.get(model.name),
                    "requests": now.requests,
                    "errors": now.errors,
                    "rejected": now.rejected,
                    "rate": None if rate is None else round(rate, 2),
                    "p50_ms": _ms(quantile(0.5, window)),
                    "p99_ms": _ms(quantile(0.99, window)),
                    "streams_open": now.streams_open,
                    "chunk_rate": None if chunk_rate is None else round(chunk_rate, 2),
                    "first_chunk_p50_ms": _ms(quantile(0.5, first_chunk)),
                    "streams_cancelled": now.streams_cancelled,
                    "history": self._model_history(model.name),
                }
            )
        return {
            "time": latest.time if latest else time.time(),
            "interval": self.interval,
            "inflight": next(iter(self.metrics.inflight.collect())).samples[0].value,
            "models": models,
        }

    def _model_history(self, name: str) -> dict[str, list[Any]]:
        points: dict[str, list[Any]] = {
            "t": [], "rate": [], "p50_ms": [], "p99_ms": [], "queued": [], "errors": [],
            "chunk_rate": [], "streams_open": [],
        }  # fmt: skip
        samples = list(self._history)
        for before, after in itertools.pairwise(samples):
            a = after.counts.get(name, _Counts())
            b = before.counts.get(name, _Counts())
            seconds = max(after.time - before.time, 1e-3)
            window = _minus(a.buckets, b.buckets)
            points["t"].append(round(after.time, 3))
            points["rate"].append(round((a.requests - b.requests) / seconds, 2))
            points["p50_ms"].append(_ms(quantile(0.5, window)))
            points["p99_ms"].append(_ms(quantile(0.99, window)))
            points["queued"].append(after.queued.get(name, 0))
            points["errors"].append(a.errors - b.errors + a.rejected - b.rejected)
            points["chunk_rate"].append(round((a.chunks - b.chunks) / seconds, 2))
            points["streams_open"].append(a.streams_open)
        return points
