"""The push tool against a real registry: Debian's ``docker-registry`` (the CNCF distribution
registry) on a free loopback port, with a configuration and storage of this test's own.

Pushes the Redis broker image, pulls it back by digest through the HTTP API (manifest and every
blob, digests checked), pushes again (nothing uploaded), and pulls it with podman where podman
works. Skipped when ``docker-registry`` is not installed (``.ci/run`` installs it), unless ``CI``
or ``CONVEYOR_REQUIRE_REGISTRY`` is set, where that fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.oci.credentials import Repository
from tools.oci.distribution import RegistryClient, sha256_digest
from tools.oci.engine import detect_engine
from tools.oci.layout import MANIFEST_MEDIA_TYPE
from tools.oci.push import open_layout, push_image
from tools.stack.ports import free_port

_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def _required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("CONVEYOR_REQUIRE_REGISTRY"))


def _tarball() -> Path:
    paths = [Path(p) for p in os.environ["CONVEYOR_PUSH_TEST_IMAGE"].split()]
    (tarball,) = (p for p in paths if p.suffix == ".tar")
    return tarball


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.access(binary, os.X_OK):
        message = "docker-registry is not installed (apt-get install docker-registry; .ci/run does)"
        if _required():
            pytest.fail(message + " (required here: CI or CONVEYOR_REQUIRE_REGISTRY is set)")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(_CONFIG.format(root=root / "storage", port=port))
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not start: {(root / 'registry.log').read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def pushed(registry: str) -> tuple[str, str]:
    """Pushes the image once with the CLI; returns (repository, the reference it printed)."""
    repository = f"{registry}/conveyor/redis"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "tools.oci.push", "--tarball", str(_tarball()),
         "--name", "conveyor/redis", "--repository", repository, "--tag", "push-test"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    print(done.stderr.strip())
    return repository, done.stdout.strip()


def test_push_prints_the_built_digest(pushed: tuple[str, str]) -> None:
    repository, printed = pushed
    with open_layout(_tarball()) as image:
        assert printed == f"{repository}@{image.digest}"
    print(f"pushed {printed}")


def test_pull_back_by_digest_over_the_api(pushed: tuple[str, str]) -> None:
    repository, printed = pushed
    digest = printed.rpartition("@")[2]
    client = RegistryClient(Repository.parse(repository))
    answer = client.get_manifest(digest, (MANIFEST_MEDIA_TYPE,))
    assert answer.headers["content-type"] == MANIFEST_MEDIA_TYPE
    assert answer.headers["docker-content-digest"] == digest
    assert sha256_digest(answer.body) == digest
    manifest = json.loads(answer.body)
    blobs = [manifest["config"], *manifest["layers"]]
    total = 0
    for blob in blobs:
        data = client.get_blob(blob["digest"])  # checks the digest
        assert len(data) == blob["size"]
        total += len(data)
    by_tag = client.get_manifest("push-test", (MANIFEST_MEDIA_TYPE,))
    assert sha256_digest(by_tag.body) == digest
    print(f"pulled {printed}: manifest + {len(blobs)} blobs ({total} bytes), digests match")


def test_second_push_uploads_nothing(pushed: tuple[str, str]) -> None:
    repository, _ = pushed
    client = RegistryClient(Repository.parse(repository))
    with open_layout(_tarball()) as image:
        assert all(client.blob_exists(d) for d in image.blob_digests())
        again = push_image(image, client, "push-test-2")
    assert (again.uploaded, again.uploaded_bytes) == (0, 0)
    assert again.present == len(image.blob_digests())
    print(f"second push: {again.present} blobs already there, 0 uploaded")


def test_podman_pulls_by_digest(pushed: tuple[str, str]) -> None:
    repository, printed = pushed
    engine = detect_engine("podman")
    if engine is None:
        if os.environ.get("CONVEYOR_REQUIRE_CONTAINERS"):
            pytest.fail("podman does not run here (CONVEYOR_REQUIRE_CONTAINERS is set)")
        pytest.skip("podman does not run here (tools/podman/setup installs it)")
    with open_layout(_tarball()) as image:
        config_digest = image.blob_digests()[0]
    existed = engine.run("image", "exists", config_digest.removeprefix("sha256:"), check=False)
    pull = engine.run("pull", "--tls-verify=false", printed, check=False, timeout=300)
    assert pull.returncode == 0, pull.stderr
    try:
        inspect = engine.run("image", "inspect", "--format", "{{.Id}} {{.Digest}}", printed)
        image_id, digest = inspect.stdout.split()
        assert image_id == config_digest.removeprefix("sha256:")
        assert digest == printed.rpartition("@")[2]
        print(f"podman pulled {printed}: image id {image_id[:12]}")
    finally:
        if existed.returncode == 0:  # the image was loaded before (conveyor/redis:dev): keep it
            engine.run("untag", config_digest.removeprefix("sha256:"), repository, check=False)
        else:
            engine.run("rmi", "--force", config_digest.removeprefix("sha256:"), check=False)
