"""Tests of the image tool: layer contents, determinism, manifest structure."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tools.oci.build import build_image, main
from tools.oci.errors import DebFormatError, SpecError
from tools.oci.layout import CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE
from tools.oci.spec import load_spec
from tools.oci.tests.helpers import blob, layer_members, make_deb, read_layout, write_spec

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    deb = make_deb(
        tmp_path / "libdemo.deb",
        "libdemo",
        {
            "./": None,
            "./usr/lib/libdemo.so": b"\x7fELF fake",
            "./lib64/ld.so": "-> /usr/lib/libdemo.so",
            "./usr/share/doc/libdemo/changelog.gz": b"noise",
            "./usr/share/doc/libdemo/copyright": b"MIT",
            "./usr/share/man/man1/demo.1.gz": b"noise",
            "./usr/lib/python3.11/demo.py": b"VALUES = {'a', 'b', 'c'}\n",
        },
    )
    app = tmp_path / "main.py"
    app.write_text("print('hi')\n")
    spec: dict[str, Any] = {
        "tag": "conveyor/test:dev",
        "python_cache_tag": sys.implementation.cache_tag,
        "layers": [
            {"name": "base", "debs": [deb.name], "rootfs": {}, "compile_python": True},
            {"name": "app", "files": [{"src": app.name, "dest": "/app/main.py"}]},
        ],
        "config": {
            "entrypoint": ["/usr/bin/python3.11", "-m", "main"],
            "env": {"PYTHONPATH": "/app"},
            "user": "65532:65532",
            "workdir": "/app",
            "exposed_ports": ["8000/tcp"],
            "labels": {"org.opencontainers.image.title": "test"},
            "healthcheck": {"test": ["CMD", "/usr/bin/python3.11", "-c", "pass"]},
        },
    }
    return write_spec(tmp_path / "spec.json", spec)


def _build(spec_file: Path, out: Path) -> dict[str, bytes]:
    assert main(["--spec", str(spec_file), "--out", str(out), "--base", str(spec_file.parent)]) == 0
    return read_layout(out)


def test_same_input_gives_same_bytes(spec_file: Path, tmp_path: Path) -> None:
    first = tmp_path / "a.tar"
    second = tmp_path / "b.tar"
    _build(spec_file, first)
    _build(spec_file, second)
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )


def test_separate_processes_give_same_digest(spec_file: Path, tmp_path: Path) -> None:
    digests = []
    for run, seed in enumerate(("1", "2")):
        digest = tmp_path / f"digest{run}"
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=os.pathsep.join(sys.path))
        subprocess.run(
            [sys.executable, "-m", "tools.oci.build", "--spec", str(spec_file),
             "--out", str(tmp_path / f"{run}.tar"), "--digest", str(digest),
             "--base", str(spec_file.parent)],
            check=True, env=env, cwd=REPO_ROOT, timeout=300,
        )  # fmt: skip
        digests.append(digest.read_text().strip())
    assert digests[0] == digests[1]
    assert digests[0].startswith("sha256:")


def test_layout_and_manifest_structure(spec_file: Path, tmp_path: Path) -> None:
    files = _build(spec_file, tmp_path / "image.tar")
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    (descriptor,) = index["manifests"]
    assert descriptor["annotations"]["io.containerd.image.name"] == "conveyor/test:dev"
    manifest_bytes = blob(files, descriptor["digest"])
    assert descriptor["size"] == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    config = json.loads(blob(files, manifest["config"]["digest"]))
    assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 2
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        data = blob(files, layer["digest"])
        assert layer["mediaType"] == LAYER_MEDIA_TYPE
        assert layer["size"] == len(data)
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
        members = layer_members(data)
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert diff_id.startswith("sha256:")
    docker = json.loads(files["manifest.json"])
    assert docker[0]["RepoTags"] == ["conveyor/test:dev"]
    assert docker[0]["Config"] == "blobs/sha256/" + manifest["config"]["digest"][7:]
    for path in docker[0]["Layers"]:
        assert path in files
    runtime = config["config"]
    assert runtime["User"] == "65532:65532"
    assert runtime["ExposedPorts"] == {"8000/tcp": {}}
    assert runtime["Healthcheck"]["Test"][0] == "CMD"
    assert config["created"] == "1970-01-01T00:00:00Z"


def test_base_layer_content(spec_file: Path, tmp_path: Path) -> None:
    files = _build(spec_file, tmp_path / "image.tar")
    manifest = json.loads(blob(files, json.loads(files["index.json"])["manifests"][0]["digest"]))
    members = {m.name: m for m in layer_members(blob(files, manifest["layers"][0]["digest"]))}
    assert "usr/share/man/man1/demo.1.gz" not in members
    assert "usr/share/doc/libdemo/changelog.gz" not in members
    assert "usr/share/doc/libdemo/copyright" in members
    assert members["lib64/ld.so"].linkname == "../usr/lib/libdemo.so"
    assert members["tmp"].mode == 0o1777
    assert (members["home/nonroot"].uid, members["home/nonroot"].mode) == (65532, 0o700)
    assert b"nonroot:x:65532:65532" in _content(
        blob(files, manifest["layers"][0]["digest"]), "etc/passwd"
    )
    assert "var/lib/dpkg/status.d/libdemo" in members
    pyc = f"usr/lib/python3.11/__pycache__/demo.{sys.implementation.cache_tag}.pyc"
    assert members[pyc].isfile()
    header = _content(blob(files, manifest["layers"][0]["digest"]), pyc)[4:8]
    assert int.from_bytes(header, "little") == 0b01  # hash-based, unchecked
    for member in members.values():
        assert member.mtime == 0
        assert member.uname == member.gname == ""
        if member.name != "home/nonroot":
            assert member.uid == member.gid == 0


def _content(layer_blob: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(layer_blob), mode="r:gz") as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


def test_gzip_header_is_fixed(spec_file: Path, tmp_path: Path) -> None:
    files = _build(spec_file, tmp_path / "image.tar")
    manifest = json.loads(blob(files, json.loads(files["index.json"])["manifests"][0]["digest"]))
    data = blob(files, manifest["layers"][1]["digest"])
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0  # no FNAME
    assert data[4:8] == b"\x00\x00\x00\x00"  # mtime 0


def test_missing_input_is_a_spec_error(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.json", {"tag": "x:y", "layers": [{"debs": ["nope.deb"]}]})
    with pytest.raises(SpecError, match=r"nope\.deb"):
        load_spec(spec, tmp_path)


def test_not_a_deb_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not an archive")
    spec = write_spec(tmp_path / "s.json", {"tag": "x:y", "layers": [{"debs": [bad.name]}]})
    with pytest.raises(DebFormatError):
        build_image(load_spec(spec, tmp_path))


def test_wrong_cache_tag_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\n")
    spec = write_spec(
        tmp_path / "s.json",
        {
            "tag": "x:y",
            "python_cache_tag": "cpython-299",
            "layers": [{"files": [{"src": "m.py", "dest": "/app/m.py"}], "compile_python": True}],
        },
    )
    with pytest.raises(SpecError, match="cpython-299"):
        build_image(load_spec(spec, tmp_path))
