"""The ``streaming`` scenario: streamed answers through the queue against the same generator
answering Server-Sent Events in one process (issue 31's goals), in the same run.

The baseline (``load_testing/reference/stream_gateway.py``) runs model_c's own generator class
inside one FastAPI process; Conveyor runs model_c as a worker behind the gateway
(``POST /predict/<model_c>?stream=true``). Both use the same ``CHUNK_DELAY_MS``
(``--chunk-delay-ms``). Three parts, rounds alternating the two systems:

1. **Time to first piece, one client**: ``--first-requests`` streams of 8 words one after the
   other; p50 and p99 from the request's write to its first piece. Goal: Conveyor's p50 within
   2 ms of the baseline's.
2. **64 streams of 200 pieces** at once (``--streams``, ``--pieces``): pieces a second over
   the whole run, p99 gap between two pieces of a stream, and every stream checked word by
   word against the generator run here with the same prompt and seed: pieces lost, duplicated
   or out of order. Goals: at least 0.5x the baseline's rate; nothing lost, duplicated or
   reordered.
3. **Idle streams** (``--idle-streams``, 1,000): that many streams held open on a second
   model_c worker whose words come ``IDLE_DELAY_MS`` apart (most wait in its queue), the
   gateway's RSS before and while they are open. Goal: within 100 MB of its start.

The client is ``load_testing.sse_client``: bare asyncio streams, far cheaper per event than
either server.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from load_testing import goals
from load_testing.procstat import cpu_seconds, rss_mb
from load_testing.reference.stream_process import StreamBaseline
from load_testing.sse_client import open_stream
from load_testing.stack import Stack, environment
from load_testing.targets import brokers
from models.model_c.config import ModelCSettings
from models.model_c.model import load_table
from models.model_c.ngram import Ngrams

__all__ = ["run_streaming"]

MODEL: Final = "models.model_c"
IDLE_DELAY_MS: Final = 5000
"""The idle worker's delay between two words: its streams stay open and quiet."""
FIRST_WORDS: Final = 8
PROMPT: Final = "The keeper climbed the"
TTFC_GAP_MS: Final = 2.0
RATE_BOUND: Final = 0.5
IDLE_RSS_MB: Final = 100.0


@dataclass
class StreamOutcome:
    """One stream as the client saw it."""

    words: list[str] = field(default_factory=list)
    first_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    restarts: int = 0
    done: bool = False
    error: str = ""


async def _stream(url: str, seed: int, words: int) -> StreamOutcome:
    body = json.dumps({"prompt": PROMPT, "max_tokens": words, "seed": seed}).encode()
    outcome = StreamOutcome()
    response = await open_stream(url, body)
    try:
        if response.status != 200:
            outcome.error = f"HTTP {response.status}: {(await response.text())[:200]}"
            return outcome
        last = response.sent
        async for event in response.events():
            if event.event == "message":
                outcome.words.append(json.loads(event.data)["text"])
                if outcome.first_s is None:
                    outcome.first_s = event.received - response.sent
                else:
                    outcome.gaps_s.append(event.received - last)
                last = event.received
            elif event.event == "restart":
                outcome.restarts += 1
                outcome.words.clear()
            elif event.event == "done":
                outcome.done = True
                break
            elif event.event == "error":
                outcome.error = event.data[:200]
                break
    finally:
        response.close()
    return outcome


@functools.cache
def _table() -> Ngrams:
    return load_table(ModelCSettings())


def _expected(seed: int, words: int) -> list[str]:
    table = _table()
    return [" " + w for w in table.generate(PROMPT, words, seed, 1.0)]


def _faults(got: Sequence[str], expected: Sequence[str]) -> int:
    """Pieces lost, duplicated or out of place in ``got``."""
    misplaced = sum(a != b for a, b in zip(got, expected, strict=False))
    return misplaced + abs(len(got) - len(expected))


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _first_pieces(url: str, count: int) -> list[float]:
    times = []
    for seed in range(count):
        outcome = await _stream(url, seed, FIRST_WORDS)
        if outcome.first_s is not None and not outcome.error:
            times.append(outcome.first_s * 1000)
    return times


@dataclass(frozen=True)
class ManyStreams:
    """Part 2's figures for one system and round."""

    rate: float
    p99_gap_ms: float
    faults: int
    failed: int
    cpu_ms_per_piece: float


async def _many(url: str, streams: int, pieces: int, pid: int) -> ManyStreams:
    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    outcomes = await asyncio.gather(*(_stream(url, seed, pieces) for seed in range(streams)))
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu
    got = sum(len(o.words) for o in outcomes)
    faults = sum(_faults(o.words, _expected(seed, pieces)) for seed, o in enumerate(outcomes))
    gaps = [g * 1000 for o in outcomes for g in o.gaps_s]
    return ManyStreams(
        rate=got / elapsed,
        p99_gap_ms=_pct(gaps, 0.99),
        faults=faults,
        failed=sum(1 for o in outcomes if o.error or not o.done),
        cpu_ms_per_piece=cpu * 1000 / got if got else float("nan"),
    )


async def _idle(url: str, count: int, gateway_pid: int) -> tuple[float, float, int]:
    """Hold ``count`` streams open; the gateway's RSS before and while open, and how many
    were open (answered 200) when measured."""
    before = rss_mb(gateway_pid)
    body = json.dumps({"prompt": PROMPT, "max_tokens": 4, "seed": 1}).encode()
    responses = []
    for start in range(0, count, 100):
        batch = [open_stream(url, body) for _ in range(start, min(count, start + 100))]
        responses += await asyncio.gather(*batch, return_exceptions=True)
    await asyncio.sleep(3)
    during = rss_mb(gateway_pid)
    opened = sum(1 for r in responses if not isinstance(r, BaseException) and r.status == 200)
    for r in responses:
        if not isinstance(r, BaseException):
            r.close()
    return before, during, opened


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_streaming(args: argparse.Namespace, out: Path) -> list[goals.Verdict]:
    """The streaming scenario (see the module doc); returns its verdicts."""
    _raise_file_limit()
    amqp_url, redis_url = brokers()
    delay = str(args.chunk_delay_ms)
    with (
        environment(CHUNK_DELAY_MS=delay),
        StreamBaseline(out / "logs") as baseline,
        Stack(
            out / "logs",
            amqp_url=amqp_url,
            redis_url=redis_url,
            extra_models={"model_c": MODEL, "model_c_idle": MODEL},
            extra_env={"model_c_idle": {"CHUNK_DELAY_MS": str(IDLE_DELAY_MS)}},
        ) as stack,
    ):
        conveyor = f"{stack.api_url}/predict/{stack.model_name('model_c')}?stream=true"
        idle_url = f"{stack.api_url}/predict/{stack.model_name('model_c_idle')}?stream=true"
        gateway_pid = stack.services["api"].pid
        systems = {"baseline": (baseline.url, baseline.pid), "conveyor": (conveyor, gateway_pid)}
        asyncio.run(_first_pieces(conveyor, 20))  # warm-up
        asyncio.run(_first_pieces(baseline.url, 20))
        first: dict[str, list[float]] = {name: [] for name in systems}
        many: dict[str, list[ManyStreams]] = {name: [] for name in systems}
        per_round = max(1, args.first_requests // args.rounds)
        for _ in range(args.rounds):
            for name, (url, pid) in systems.items():
                first[name] += asyncio.run(_first_pieces(url, per_round))
                many[name].append(asyncio.run(_many(url, args.streams, args.pieces, pid)))
        before, during, opened = asyncio.run(_idle(idle_url, args.idle_streams, gateway_pid))
    print(f"\nCHUNK_DELAY_MS={delay}; {args.rounds} rounds\n")
    print(f"time to first piece, c=1, {FIRST_WORDS}-word streams:")
    p50 = {}
    for name, times in first.items():
        p50[name] = statistics.median(times) if times else float("nan")
        print(
            f"  {name:9} n={len(times):4}  p50 {p50[name]:6.2f} ms  p99 {_pct(times, 0.99):6.2f} ms"
        )
    print(f"\n{args.streams} streams of {args.pieces} pieces at once:")
    for name, rounds in many.items():
        for i, m in enumerate(rounds, 1):
            print(
                f"  {name:9} round {i}: {m.rate:8.0f} pieces/s  p99 gap {m.p99_gap_ms:7.2f} ms  "
                f"faults {m.faults}  failed streams {m.failed}  "
                f"server CPU {m.cpu_ms_per_piece:.3f} ms/piece"
            )
    rate = {name: statistics.mean(m.rate for m in rounds) for name, rounds in many.items()}
    ratio = rate["conveyor"] / rate["baseline"] if rate["baseline"] else 0.0
    ratios = [c.rate / b.rate for c, b in zip(many["conveyor"], many["baseline"], strict=True)]
    print(
        f"  conveyor/baseline pieces/s {ratio:.2f}x "
        f"(rounds {', '.join(f'{r:.2f}x' for r in ratios)})"
    )
    print(
        f"\n{args.idle_streams} idle streams: {opened} open; "
        f"gateway RSS {before:.0f} -> {during:.0f} MB\n"
    )
    faults = sum(m.faults + m.failed for m in many["conveyor"])
    verdicts = [
        goals.Verdict(
            "streaming",
            f"time to first piece p50 {p50['conveyor']:.2f} ms vs {p50['baseline']:.2f} ms",
            f"within {TTFC_GAP_MS:g} ms",
            p50["conveyor"] - p50["baseline"] <= TTFC_GAP_MS,
        ),
        goals.Verdict(
            "streaming",
            f"conveyor/baseline pieces/s {ratio:.2f}x ({args.streams} streams)",
            f">= {RATE_BOUND:g}x",
            ratio >= RATE_BOUND,
        ),
        goals.Verdict(
            "streaming",
            f"pieces lost, duplicated or reordered, and streams failed: {faults}",
            "0",
            faults == 0,
        ),
        goals.Verdict(
            "streaming",
            f"gateway RSS +{during - before:.0f} MB with {opened} idle streams open",
            f"within {IDLE_RSS_MB:g} MB, {args.idle_streams} open",
            during - before <= IDLE_RSS_MB and opened == args.idle_streams,
        ),
    ]
    for verdict in verdicts:
        print(verdict.line())
    return verdicts
