"""The gateway's answers to one model by outcome, read from its ``GET /metrics``.

A load generator that cannot tell a failed call from a good one (h2load reads no gRPC
trailers) is checked against what the gateway itself counted: ``conveyor_requests_total``
(every endpoint, REST and gRPC alike where the gateway counts both) by ``outcome``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import httpx

__all__ = ["OK", "delta", "fetch", "outcomes"]

OK: Final = "ok"
_SAMPLE = re.compile(r"^conveyor_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def outcomes(text: str, model: str) -> dict[str, float]:
    """Requests to ``model`` by outcome (``ok``, ``client_error``, ...), summed over endpoints
    and versions, from Prometheus' text format."""
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("model") != model:
            continue
        outcome = labels.get("outcome", "")
        counts[outcome] = counts.get(outcome, 0.0) + float(match["value"])
    return counts


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """What each outcome grew by (outcomes that did not grow left out)."""
    grown = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in {*before, *after}}
    return {k: v for k, v in sorted(grown.items()) if v}


def fetch(api_url: str, model: str) -> dict[str, float]:
    """The gateway's counts for ``model`` now."""
    response = httpx.get(f"{api_url}/metrics", timeout=10)
    response.raise_for_status()
    return outcomes(response.text, model)
