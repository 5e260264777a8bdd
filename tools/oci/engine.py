"""Finding a container engine: Docker when its daemon answers, else podman with our config."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Engine", "containers_conf", "detect_engine"]

_PROBE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Engine:
    """A container engine CLI: the argv prefix of every call and the environment it needs."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, capture: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``<engine> args...`` and returns the completed process (text output)."""
        return subprocess.run(
            [*self.argv, *args],
            env=dict(os.environ, **dict(self.env)),
            check=check,
            timeout=timeout,
            capture_output=capture,
            text=True,
        )


def containers_conf() -> Path:
    """Returns ``tools/podman/containers.conf`` (from runfiles when run by Bazel)."""
    override = os.environ.get("CONVEYOR_CONTAINERS_CONF")
    if override:
        return Path(override)
    here = Path(__file__).parent
    for root in (here, Path(__file__).resolve().parent):
        candidate = root.parent / "podman" / "containers.conf"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("tools/podman/containers.conf not found beside tools/oci")


def _answers(argv: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        result = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def detect_engine(prefer: str = "auto") -> Engine | None:
    """Returns Docker if ``docker info`` succeeds, else podman if it runs, else None.

    ``prefer`` is ``auto``, ``docker`` or ``podman`` (env ``CONVEYOR_ENGINE`` overrides ``auto``).
    """
    prefer = os.environ.get("CONVEYOR_ENGINE", prefer) if prefer == "auto" else prefer
    docker = shutil.which("docker")
    if prefer in ("auto", "docker") and docker and _answers([docker, "info"]):
        return Engine("docker", (docker,))
    podman = shutil.which("podman")
    if prefer in ("auto", "podman") and podman:
        env = (("CONTAINERS_CONF", str(containers_conf())),)
        argv = (podman, "--runtime", "runc")
        if _answers([*argv, "info"], dict(os.environ, **dict(env))):
            return Engine("podman", argv, env)
    return None
