"""One ``/metrics`` for the processes of one server: siblings share their series over Unix
sockets.

With ``API_WORKERS`` above 1 the kernel hands each connection to any of the gateway's processes,
so a scrape would see one process's counters, a different one each time (to Prometheus, counter
resets). Instead every process serves its own series in OpenMetrics on a Unix socket in the
abstract namespace named for its group (a token the supervisor draws before it forks) and its
place (1 to the group's size; a process started again in a place takes the place's name), and
the process a scrape reaches reads its siblings' and answers their merge (``merge``):

- counters, histograms and summaries: summed per sample (name and labels); a ``_created``
  sample is the earliest; a bucket's exemplar is the newest of the processes';
- gauges: summed (what each process holds: in-flight requests, open streams), except those
  named in ``shared_gauges``, readings of one shared thing (queue depths), which take the
  largest;
- the runtime's own series (``process_*``, ``python_*``: memory, CPU, file descriptors,
  collections) are kept apart, each with a ``process`` label: the place.

A sibling that does not answer within ``timeout`` seconds (or is not there: it died and is
being started again) is left out of that scrape. Abstract sockets leave no files behind and
vanish with their process. Only public parts of ``prometheus_client`` are used: its OpenMetrics
exposition and parser, and ``Metric``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample

__all__ = ["Siblings", "address", "group_token", "merge", "openmetrics_text"]

logger = logging.getLogger(__name__)

PROCESS_LABEL: Final = "process"
RUNTIME_PREFIXES: Final = ("process_", "python_")
"""Families kept per process (a ``pid`` label) rather than merged."""
_SUMMED: Final = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
_OPENMETRICS, _ = choose_encoder("application/openmetrics-text")


def openmetrics_text(registry: CollectorRegistry) -> bytes:
    """``registry``'s series in OpenMetrics (what siblings send each other)."""
    return _OPENMETRICS(registry)


def _families(text: str) -> Iterator[Metric]:
    families: Iterator[Metric] = text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    return families


def merge(
    expositions: Sequence[tuple[int, str]], shared_gauges: frozenset[str] = frozenset()
) -> list[Metric]:
    """The families of several processes' OpenMetrics ``expositions`` (``(place, text)``)
    merged as the module doc says. A family's help, type and unit come from the first process
    that has it."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Sample]] = {}
    for place, text in expositions:
        for family in _families(text):
            metric = merged.get(family.name)
            if metric is None:
                metric = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                values[family.name] = {}
            own = values[family.name]
            runtime = family.name.startswith(RUNTIME_PREFIXES)
            for sample in family.samples:
                labels = dict(sample.labels)
                if runtime:
                    labels[PROCESS_LABEL] = str(place)
                key = (sample.name, tuple(sorted(labels.items())))
                before = own.get(key)
                if before is None:
                    own[key] = Sample(sample.name, labels, sample.value, None, sample.exemplar)
                elif not runtime:
                    own[key] = _combined(metric.type, family.name in shared_gauges, before, sample)
    for name, metric in merged.items():
        for sample in values[name].values():
            metric.add_sample(sample.name, sample.labels, sample.value, None, sample.exemplar)
    return list(merged.values())


def _combined(kind: str, shared: bool, before: Sample, sample: Sample) -> Sample:
    if sample.name.endswith("_created"):
        value = min(before.value, sample.value)
    elif kind in _SUMMED or (kind == "gauge" and not shared):
        value = before.value + sample.value
    elif kind == "gauge":
        value = max(before.value, sample.value)
    else:  # info, stateset, unknown: the first process's
        value = before.value
    return Sample(
        before.name, before.labels, value, None, _newest(before.exemplar, sample.exemplar)
    )


def _newest(a: Exemplar | None, b: Exemplar | None) -> Exemplar | None:
    if a is None or b is None:
        return a or b
    return b if _seconds(b) > _seconds(a) else a


def _seconds(exemplar: Exemplar) -> float:
    return 0.0 if exemplar.timestamp is None else float(exemplar.timestamp)


async def _connect(name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the abstract Unix socket ``name`` (connected by the loop's
    ``sock_connect``, which every loop, uvloop too, takes with an abstract address)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, name)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_unix_connection(sock=sock)


class _Merged(Collector):
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def group_token() -> str:
    """A new group's token (the supervisor's, before it forks)."""
    return uuid.uuid4().hex


def address(group: str, place: int) -> str:
    """The abstract Unix socket of ``place`` in ``group``."""
    return f"\0conveyor-metrics-{group}-{place}"


class Siblings:
    """This process, at ``place`` among the ``size`` serving processes of ``group`` (see the
    module doc): ``start`` serves ``registry`` to the others, ``exposition`` answers a scrape
    for all of them."""

    def __init__(
        self,
        group: str,
        place: int,
        size: int,
        registry: CollectorRegistry,
        shared_gauges: frozenset[str] = frozenset(),
        timeout: float = 2.0,
    ) -> None:
        self.group = group
        self.place = place
        self.size = size
        self.registry = registry
        self.shared_gauges = shared_gauges
        self.timeout = timeout
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Serve this process's series on its place's socket."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(address(self.group, self.place))
            listener.listen(16)
            listener.setblocking(False)
            self._server = await asyncio.start_unix_server(self._answer, sock=listener)
        except BaseException:
            listener.close()
            raise

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(openmetrics_text(self.registry))
            await writer.drain()
        except ConnectionError:
            pass  # the asking sibling left (its timeout)
        finally:
            writer.close()

    async def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """Every process's series merged, in the format ``accept`` asks for (OpenMetrics or
        Prometheus' text format, as ``conveyor.metrics.negotiated``): the body and its
        ``Content-Type``."""
        others = [n for n in range(1, self.size + 1) if n != self.place]
        texts = await asyncio.gather(*(self._read(n) for n in others))
        expositions = [(self.place, openmetrics_text(self.registry).decode())]
        expositions += [(n, t) for n, t in zip(others, texts, strict=True) if t is not None]
        expositions.sort()  # by place: the same order whichever process answers
        try:
            metrics = merge(expositions, self.shared_gauges)
        except ValueError:
            logger.exception("a sibling's series do not parse; answering this process's alone")
            metrics = merge(expositions[:1], self.shared_gauges)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(metrics))
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type

    async def _read(self, place: int) -> str | None:
        """A sibling's OpenMetrics text; None when it does not answer in time or is not
        there."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await _connect(address(self.group, place))
                try:
                    data = await reader.read()
                finally:
                    writer.close()
        except ConnectionRefusedError:
            return None  # not there: it died and is being started again
        except (TimeoutError, OSError) as e:
            logger.warning("no series from process %d: %s", place, e or type(e).__name__)
            return None
        return data.decode()
