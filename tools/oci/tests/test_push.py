"""Tests of the push tool against an in-process registry: blob checks, uploads, manifests, auth."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.oci.credentials import Credentials, Repository, find_credentials, is_loopback
from tools.oci.distribution import RegistryClient, parse_challenge, sha256_digest
from tools.oci.errors import AuthError, ImageRefError, RegistryError
from tools.oci.layout import MANIFEST_MEDIA_TYPE
from tools.oci.push import main, open_layout, push_image
from tools.oci.tests.fake_registry import RegistryState, fake_registry
from tools.oci.tests.helpers import make_image_tarball


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    return make_image_tarball(
        tmp_path / "image.tar",
        "conveyor/demo:dev",
        [{"etc/demo": b"base"}, {"app/main.py": b"print('hi')\n"}],
    )


@pytest.fixture
def state() -> RegistryState:
    return RegistryState()


@pytest.fixture
def host(state: RegistryState) -> Iterator[str]:
    with fake_registry(state) as address:
        yield address


def _client(host: str, credentials: Credentials | None = None) -> RegistryClient:
    return RegistryClient(Repository.parse(f"{host}/conveyor/demo"), credentials)


def test_push_uploads_every_blob_then_the_manifest(
    tarball: Path, host: str, state: RegistryState
) -> None:
    with open_layout(tarball) as image:
        result = push_image(image, _client(host), "1.2.0")
        manifest_digest = image.digest
    assert result.digest == manifest_digest
    assert (result.uploaded, result.present) == (3, 0)  # config + two layers
    assert result.reference == f"{host}/conveyor/demo@{manifest_digest}"
    media_type, stored = state.manifests["conveyor/demo:1.2.0"]
    assert media_type == MANIFEST_MEDIA_TYPE
    assert sha256_digest(stored) == manifest_digest
    methods = [method for method, _ in state.requests]
    assert methods == ["HEAD", "POST", "PUT"] * 3 + ["PUT"]
    assert state.requests[-1] == ("PUT", "/v2/conveyor/demo/manifests/1.2.0")


def test_second_push_sends_no_blob(tarball: Path, host: str, state: RegistryState) -> None:
    with open_layout(tarball) as image:
        push_image(image, _client(host), "1.2.0")
        state.requests.clear()
        again = push_image(image, _client(host), "1.2.1")
    assert (again.uploaded, again.present, again.uploaded_bytes) == (0, 3, 0)
    assert [m for m, _ in state.requests] == ["HEAD", "HEAD", "HEAD", "PUT"]
    assert state.manifests["conveyor/demo:1.2.1"] == state.manifests["conveyor/demo:1.2.0"]


def test_absolute_upload_location_with_query(
    tarball: Path, host: str, state: RegistryState
) -> None:
    state.relative_location = False
    with open_layout(tarball) as image:
        result = push_image(image, _client(host), "x")
    assert result.uploaded == 3
    assert len(state.blobs) == 3


def test_pull_back_by_digest(tarball: Path, host: str) -> None:
    client = _client(host)
    with open_layout(tarball) as image:
        result = push_image(image, client, "1.2.0")
    answer = client.get_manifest(result.digest, (MANIFEST_MEDIA_TYPE,))
    assert sha256_digest(answer.body) == result.digest
    manifest = json.loads(answer.body)
    for blob in [manifest["config"], *manifest["layers"]]:
        assert len(client.get_blob(blob["digest"])) == blob["size"]


def test_bearer_token_flow(tarball: Path, host: str, state: RegistryState) -> None:
    state.auth = "bearer"
    with open_layout(tarball) as image:
        result = push_image(image, _client(host, Credentials("pusher", "s3cret")), "1.2.0")
    assert result.uploaded == 3
    assert state.tokens_issued  # one token, reused for every later request
    assert len(state.tokens_issued) == 1
    assert state.scopes_requested == ["repository:conveyor/demo:pull,push"]


def test_basic_auth(tarball: Path, host: str, state: RegistryState) -> None:
    state.auth = "basic"
    with open_layout(tarball) as image:
        assert push_image(image, _client(host, Credentials("pusher", "s3cret")), "t").uploaded == 3


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_wrong_or_missing_credentials_fail_clearly(
    tarball: Path, host: str, state: RegistryState, auth: str
) -> None:
    state.auth = auth  # type: ignore[assignment]
    with open_layout(tarball) as image:
        with pytest.raises(AuthError, match="credentials"):
            push_image(image, _client(host, Credentials("pusher", "wrong")), "t")
        with pytest.raises(AuthError, match="CONVEYOR_PUSH_USERNAME"):
            push_image(image, _client(host), "t")
    assert not state.blobs


def test_upload_refuses_bytes_that_do_not_match(host: str) -> None:
    with pytest.raises(RegistryError, match="does not match"):
        _client(host).upload_blob(sha256_digest(b"a"), b"b")


def test_missing_blob_is_an_error_with_its_code(host: str) -> None:
    with pytest.raises(RegistryError) as caught:
        _client(host).get_blob(sha256_digest(b"nothing"))
    assert caught.value.status == 404
    assert caught.value.codes == ("BLOB_UNKNOWN",)


def test_unreachable_registry(tarball: Path) -> None:
    client = RegistryClient(Repository.parse("127.0.0.1:9/conveyor/demo"), timeout=5)
    with (
        open_layout(tarball) as image,
        pytest.raises(RegistryError, match=re.escape("127.0.0.1:9/")),
    ):
        push_image(image, client, "t")


def test_cli_prints_the_digest_reference(
    tarball: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--tarball", str(tarball), "--name", "conveyor/demo", "--tag", "1.2.0"]
    assert main([*argv, "--repository", f"{host}/team/demo"], environ={}) == 0
    out = capsys.readouterr()
    with open_layout(tarball) as image:
        assert out.out == f"{host}/team/demo@{image.digest}\n"
    assert "3 blobs uploaded" in out.err


def test_cli_takes_registry_and_tag_from_the_environment(
    tarball: Path, host: str, state: RegistryState, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"CONVEYOR_PUSH_REGISTRY": host, "CONVEYOR_PUSH_TAG": "from-env"}
    assert main(["--tarball", str(tarball), "--name", "conveyor/demo"], environ=environ) == 0
    assert "conveyor/demo:from-env" in state.manifests
    assert capsys.readouterr().out.startswith(f"{host}/conveyor/demo@sha256:")


def test_cli_defaults_to_the_local_tag(tarball: Path, host: str, state: RegistryState) -> None:
    environ = {"CONVEYOR_PUSH_REPOSITORY": f"{host}/conveyor/demo"}
    assert main(["--tarball", str(tarball), "--name", "conveyor/demo"], environ=environ) == 0
    assert "conveyor/demo:dev" in state.manifests


def test_cli_without_destination_explains(
    tarball: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--tarball", str(tarball), "--name", "conveyor/demo"], environ={}) == 1
    assert "--repository registry.example.com/conveyor/api" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "host", "name"),
    [
        ("registry.example.com/conveyor/api", "registry.example.com", "conveyor/api"),
        ("localhost:5000/conveyor/api", "localhost:5000", "conveyor/api"),
        ("localhost/api", "localhost", "api"),
        ("10.0.0.1:5000/a/b/c", "10.0.0.1:5000", "a/b/c"),
    ],
)
def test_repository_parse(text: str, host: str, name: str) -> None:
    assert Repository.parse(text) == Repository(host, name)


@pytest.mark.parametrize("text", ["conveyor/api", "api", "registry.example.com/", "r.io/Upper"])
def test_repository_parse_refuses(text: str) -> None:
    with pytest.raises(ImageRefError):
        Repository.parse(text)


def test_loopback_hosts_use_http() -> None:
    assert (
        is_loopback("localhost:5000")
        and is_loopback("127.0.0.1:5000")
        and is_loopback("[::1]:5000")
    )
    assert not is_loopback("registry.example.com") and not is_loopback("10.0.0.1:5000")
    assert RegistryClient(Repository.parse("localhost:5000/a")).scheme == "http"
    assert RegistryClient(Repository.parse("registry.example.com/a")).scheme == "https"
    assert (
        RegistryClient(Repository.parse("registry.example.com/a"), insecure=True).scheme == "http"
    )


def test_challenge_parsing() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:conveyor/api:pull,push"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:conveyor/api:pull,push",
    }


def test_credentials_from_environment_first(tmp_path: Path) -> None:
    environ = {"CONVEYOR_PUSH_USERNAME": "u", "CONVEYOR_PUSH_PASSWORD": "p", "HOME": str(tmp_path)}
    found = find_credentials("registry.example.com", environ)
    assert found is not None and (found.username, found.password) == ("u", "p")
    assert "p" not in repr(found)


def test_credentials_from_docker_and_podman_auth_files(tmp_path: Path) -> None:
    auth = base64.b64encode(b"robot:tok:en").decode()
    docker = tmp_path / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text(json.dumps({"auths": {"https://registry.example.com": {"auth": auth}}}))
    podman = tmp_path / "auth.json"
    podman.write_text(json.dumps({"auths": {"localhost:5000": {"auth": auth}}}))
    environ = {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(podman)}
    for host in ("registry.example.com", "localhost:5000"):
        found = find_credentials(host, environ)
        assert found is not None and (found.username, found.password) == ("robot", "tok:en")
    assert find_credentials("other.example.com", environ) is None
