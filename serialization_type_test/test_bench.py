"""The benchmark command writes its table, CSV, charts and summary, with honest statistics."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from serialization_type_test import bench, payloads
from serialization_type_test.codecs import make_codec
from serialization_type_test.measure import MeasureOptions, measure


def test_quick_run_writes_every_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = bench.main(
        [
            "--quick",
            "--out",
            str(tmp_path),
            "--codecs",
            "protobuf,msgpack",
            "--payloads",
            "text,nested",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "protobuf" in out
    assert "msgpack" in out

    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    # The baseline is always measured, first, even when not asked for.
    assert [(r["payload"], r["codec"]) for r in rows] == [
        (p, c) for p in ("text", "nested") for c in ("json", "protobuf", "msgpack")
    ]
    for row in rows:
        assert row["roundtrip_ok"] == "True"
        assert int(row["size_bytes"]) > 0
        assert float(row["encode_median_us"]) > 0
        assert float(row["decode_median_us"]) > 0
        if row["codec"] == "json":
            assert float(row["size_vs_baseline"]) == 1.0
    for name in ("sizes.png", "times.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    summary = (tmp_path / "summary.md").read_text()
    assert "protobuf backend" in summary
    assert "Round-trip failures: 0." in summary


def test_unknown_codec_exits_with_usage_error(tmp_path: Path) -> None:
    assert bench.main(["--out", str(tmp_path), "--codecs", "xml"]) == 2


def test_default_out_dir_is_under_workspace_when_run_by_bazel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(tmp_path))
    out = bench.default_out_dir(dt.datetime(2024, 1, 2, 3, 4, 5))
    assert out == tmp_path / "bench-results" / "serialization-20240102-030405"


def test_measure_reports_size_and_ordered_quartiles() -> None:
    payload = payloads.example_payloads()[1]
    codec = make_codec("json", payload.kind)
    m = measure(codec, payload.name, payload.value, MeasureOptions(5, 1, 1_000_000))
    assert m.size_bytes == len(codec.encode(payload.value))
    assert m.roundtrip_ok
    for t in (m.encode, m.decode):
        assert 0 < t.min_ns <= t.p25_ns <= t.median_ns <= t.p75_ns
        assert t.loops >= 1
