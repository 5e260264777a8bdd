"""A model written outside the repository, as a user would, and a venv with our wheels.

``ECHO_PROTO`` and ``ECHO_MODEL`` are the files of a user's own project (their ``.proto``
compiled by grpcio-tools' protoc inside the venv); ``make_venv`` installs ``conveyor-worker``,
``conveyor-client`` and grpcio-tools with ``pip install --no-index`` from a directory holding
our two wheels and the locked dependencies (``tools.wheel.venv``): never the network.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tools.wheel import venv

ECHO_PROTO = """\
syntax = "proto3";
package byom.v1;
message EchoRequest { string text = 1; double seconds = 2; }
message EchoResponse { string text = 1; int32 length = 2; }
"""

ECHO_MODEL = '''\
"""A user's model: upper-cases text (after sleeping `seconds`); refuses "bad"."""
import asyncio

import echo_pb2
import worker_base
from worker_base import InvalidRequest, Model

print("worker_base from", worker_base.__file__, flush=True)


class Echo(Model):
    name = "echo"

    async def process_request(self, body):
        request = echo_pb2.EchoRequest.FromString(body)
        if request.text == "bad":
            raise InvalidRequest("bad is not a word", field="text")
        await asyncio.sleep(request.seconds)
        return echo_pb2.EchoResponse(text=request.text.upper(), length=len(request.text))

    def get_request_format(self):
        return echo_pb2.EchoRequest.DESCRIPTOR

    def get_response_format(self):
        return echo_pb2.EchoResponse.DESCRIPTOR
'''

# grpcio-tools: what a user adds to compile their .proto.
USER_PACKAGES = ["grpcio-tools"]


def make_venv(root: Path, our_wheels: list[Path], site: Path) -> Path:
    """A fresh venv at ``root/venv`` with our wheels and grpcio-tools pip-installed offline;
    returns its ``bin`` directory."""
    return venv.make_venv(
        root, our_wheels, site, ["conveyor-worker", "conveyor-client", *USER_PACKAGES]
    )


def write_model(project: Path, venv_bin: Path) -> None:
    """The user's project: ``echo.proto`` compiled to ``echo_pb2.py``, and ``echo_model.py``."""
    project.mkdir(parents=True)
    (project / "echo.proto").write_text(ECHO_PROTO)
    (project / "echo_model.py").write_text(ECHO_MODEL)
    protoc = [
        str(venv_bin / "python"),
        "-m",
        "grpc_tools.protoc",
        "-I.",
        "--python_out=.",
        "echo.proto",
    ]
    subprocess.run(protoc, check=True, cwd=project, env=venv.clean_env())
