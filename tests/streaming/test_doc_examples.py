"""The streaming examples of README.md, docs/protocol.md and docs/api.md run as written against
a real stack (a registry, a gateway with gRPC, and workers named model_a and model_c, as the
examples name them: the target's brokers are its own).

An example is the fenced block right after a line ``MARKER`` in the Markdown. It runs as it
stands (``bash`` blocks with bash, ``python`` blocks with this Python, which has the clients the
examples install), with one change: the documented addresses, ``http://localhost:8000`` and
gRPC's ``localhost:8081``, are the stack's (its ports are free ones, since stacks of other tests
run beside it). It must exit 0 within ``TIMEOUT`` and print what its comments show where they
show it exactly (a comment ``# {...}`` with no ``…``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.stack import Stack, free_port

MARKER = "<!-- example: tests/streaming/test_doc_examples.py -->"
DOCS = ("README.md", "docs/protocol.md", "docs/api.md")
ROOT = Path(__file__).parents[2]
"""The repository's files (the runfiles' copy)."""
HTTP = "http://localhost:8000"
GRPC = "localhost:8081"
TIMEOUT = 90.0


@dataclass(frozen=True)
class Example:
    """One fenced block after the marker."""

    doc: str
    line: int
    language: str
    code: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def examples() -> list[Example]:
    """Every marked block of ``DOCS``, in order."""
    found = []
    for doc in DOCS:
        lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if line.strip() != MARKER:
                continue
            fence = lines[number + 1]
            indent = len(fence) - len(fence.lstrip())
            end = next(i for i in range(number + 2, len(lines)) if lines[i].strip() == "```")
            code = "\n".join(text[indent:] for text in lines[number + 2 : end])
            found.append(Example(doc, number + 2, fence.strip().removeprefix("```"), code))
    return found


def shown(code: str) -> list[str]:
    """The outputs the example's comments show exactly: ``# {...}`` lines with no ``…``."""
    outputs = []
    for line in code.splitlines():
        comment = line.strip().removeprefix("# ")
        if line.strip().startswith("# {") and "…" not in comment:
            outputs.append(comment)
    return outputs


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(GRPC_PORT=str(free_port())) as stack:
        stack.start_worker("models.model_a", "model_a")
        stack.start_worker("models.model_c", "model_c")
        yield stack


def test_the_docs_show_streaming_with_curl_openai_and_tritonclient() -> None:
    found = examples()
    for doc in ("README.md", "docs/protocol.md"):
        assert any(e.doc == doc for e in found), f"{doc} has no marked example"
    codes = "\n".join(e.code for e in found)
    for client in ("curl -N", "from openai import OpenAI", "tritonclient.grpc", "stream=True"):
        assert client in codes, client


@pytest.mark.parametrize("example", examples(), ids=str)
def test_the_example_runs_as_written(stack: Stack, example: Example) -> None:
    assert HTTP in example.code or GRPC in example.code, "an example talks to the gateway"
    grpc = stack.gateway.env["GRPC_PORT"]
    code = example.code.replace(HTTP, stack.api_url).replace(GRPC, f"127.0.0.1:{grpc}")
    if example.language == "bash":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        assert example.language == "python", example.language
        command = [sys.executable, "-c", code]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, env=environment, check=False
    )
    assert run.returncode == 0, f"{example} failed:\n{run.stdout}\n{run.stderr}"
    assert run.stdout.strip(), f"{example} printed nothing"
    for output in shown(example.code):
        assert output in run.stdout, f"{example} does not print {output}:\n{run.stdout}"
