"""Turn measurements into a printed table, a CSV file, PNG charts and a Markdown summary."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from serialization_type_test.measure import Measurement

__all__ = ["Row", "format_table", "make_rows", "write_charts", "write_csv", "write_summary"]

CSV_FIELDS = (
    "payload",
    "codec",
    "wire_safe",
    "size_bytes",
    "size_vs_baseline",
    "encode_median_us",
    "encode_iqr_us",
    "decode_median_us",
    "decode_iqr_us",
    "roundtrip_us",
    "roundtrip_vs_baseline",
    "encode_loops",
    "decode_loops",
    "roundtrip_ok",
)


@dataclass(frozen=True)
class Row:
    """One measurement with its ratios to the baseline codec on the same payload."""

    m: Measurement
    size_vs_baseline: float
    roundtrip_vs_baseline: float

    @property
    def roundtrip_us(self) -> float:
        """Median encode plus median decode, in microseconds."""
        return (self.m.encode.median_ns + self.m.decode.median_ns) / 1000

    def as_csv(self) -> dict[str, object]:
        """The row as CSV cells keyed by :data:`CSV_FIELDS`."""
        m = self.m
        return {
            "payload": m.payload,
            "codec": m.codec,
            "wire_safe": m.wire_safe,
            "size_bytes": m.size_bytes,
            "size_vs_baseline": round(self.size_vs_baseline, 4),
            "encode_median_us": round(m.encode.median_ns / 1000, 3),
            "encode_iqr_us": round(m.encode.iqr_ns / 1000, 3),
            "decode_median_us": round(m.decode.median_ns / 1000, 3),
            "decode_iqr_us": round(m.decode.iqr_ns / 1000, 3),
            "roundtrip_us": round(self.roundtrip_us, 3),
            "roundtrip_vs_baseline": round(self.roundtrip_vs_baseline, 4),
            "encode_loops": m.encode.loops,
            "decode_loops": m.decode.loops,
            "roundtrip_ok": m.roundtrip_ok,
        }


def make_rows(measurements: Sequence[Measurement], baseline: str) -> list[Row]:
    """Attach ratios to the ``baseline`` codec measured on the same payload."""
    base = {m.payload: m for m in measurements if m.codec == baseline}
    rows = []
    for m in measurements:
        b = base[m.payload]
        b_total = b.encode.median_ns + b.decode.median_ns
        total = m.encode.median_ns + m.decode.median_ns
        rows.append(Row(m, m.size_bytes / b.size_bytes, total / b_total))
    return rows


def _us(ns: float) -> str:
    us = ns / 1000
    return f"{us:,.1f}" if us < 1000 else f"{us:,.0f}"


def format_table(rows: Sequence[Row]) -> str:
    """A fixed-width text table, one line per payload and codec."""
    header = (
        f"{'payload':<12} {'codec':<14} {'bytes':>10} {'x json':>7} "
        f"{'enc µs':>10} {'±iqr':>8} {'dec µs':>10} {'±iqr':>8} {'rt x json':>9}  ok"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        m = r.m
        unsafe = " (unsafe)" if not m.wire_safe else ""
        lines.append(
            f"{m.payload:<12} {m.codec:<14} {m.size_bytes:>10,} {r.size_vs_baseline:>7.2f} "
            f"{_us(m.encode.median_ns):>10} {_us(m.encode.iqr_ns):>8} "
            f"{_us(m.decode.median_ns):>10} {_us(m.decode.iqr_ns):>8} "
            f"{r.roundtrip_vs_baseline:>9.2f}  {'yes' if m.roundtrip_ok else 'NO'}{unsafe}"
        )
    return "\n".join(lines)


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """Write every row to ``path`` as CSV."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(r.as_csv() for r in rows)


def _grouped_bars(ax: Axes, rows: Sequence[Row], metric: str, ylabel: str) -> None:
    payloads = list(dict.fromkeys(r.m.payload for r in rows))
    codecs = list(dict.fromkeys(r.m.codec for r in rows))
    width = 0.8 / len(codecs)
    by_key = {(r.m.payload, r.m.codec): r for r in rows}
    for i, codec in enumerate(codecs):
        heights = []
        for p in payloads:
            r = by_key.get((p, codec))
            if r is None:
                heights.append(0.0)
            elif metric == "size":
                heights.append(float(r.m.size_bytes))
            elif metric == "encode":
                heights.append(r.m.encode.median_ns / 1000)
            else:
                heights.append(r.m.decode.median_ns / 1000)
        xs = [j + i * width for j in range(len(payloads))]
        ax.bar(xs, heights, width, label=codec, hatch="//" if codec == "pickle" else None)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(payloads))], payloads)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", which="both", alpha=0.3)


def write_charts(rows: Sequence[Row], out_dir: Path) -> list[Path]:
    """Write ``sizes.png`` and ``times.png`` (log scale, grouped by payload)."""
    sizes = out_dir / "sizes.png"
    fig, ax = plt.subplots(figsize=(11, 5))
    _grouped_bars(ax, rows, "size", "encoded size (bytes, log)")
    ax.set_title("Encoded size per payload")
    ax.legend(ncol=4, fontsize="small")
    fig.tight_layout()
    fig.savefig(sizes, dpi=90)
    plt.close(fig)

    times = out_dir / "times.png"
    fig, (enc, dec) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    _grouped_bars(enc, rows, "encode", "encode median (µs, log)")
    enc.set_title("Encode and decode time per payload (median of repeats)")
    enc.legend(ncol=4, fontsize="small")
    _grouped_bars(dec, rows, "decode", "decode median (µs, log)")
    fig.tight_layout()
    fig.savefig(times, dpi=90)
    plt.close(fig)
    return [sizes, times]


def _best(rows: Sequence[Row], payload: str, key: str) -> Row:
    candidates = [r for r in rows if r.m.payload == payload and r.m.wire_safe and r.m.roundtrip_ok]
    if key == "size":
        return min(candidates, key=lambda r: r.m.size_bytes)
    return min(candidates, key=lambda r: r.roundtrip_us)


def write_summary(rows: Sequence[Row], environment: dict[str, str], path: Path) -> None:
    """Write a short Markdown summary: environment, winners per payload, full table."""
    payloads = list(dict.fromkeys(r.m.payload for r in rows))
    lines = ["# Serialization benchmark", "", "## Environment", ""]
    lines += [f"- {k}: `{v}`" for k, v in environment.items()]
    lines += [
        "",
        "## Best wire-safe codec per payload",
        "",
        "| payload | smallest | bytes | fastest encode+decode | µs |",
        "|---|---|---:|---|---:|",
    ]
    for p in payloads:
        small, fast = _best(rows, p, "size"), _best(rows, p, "time")
        tied = [
            r.m.codec
            for r in rows
            if r.m.payload == p and r.m.wire_safe and r.m.size_bytes == small.m.size_bytes
        ]
        lines.append(
            f"| {p} | {', '.join(tied)} | {small.m.size_bytes:,} | {fast.m.codec} "
            f"| {fast.roundtrip_us:,.1f} |"
        )
    failed = [r for r in rows if not r.m.roundtrip_ok]
    lines += ["", f"Round-trip failures: {len(failed)}."]
    lines += [
        "",
        "## All results",
        "",
        "Times are per call, median over repeats (± inter-quartile range); ratios are to the",
        "baseline (stdlib json) on the same payload.",
        "pickle is a reference only: unsafe on the wire.",
        "",
        "| payload | codec | bytes | x json | encode µs | decode µs | enc+dec x json | ok |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        m = r.m
        lines.append(
            f"| {m.payload} | {m.codec}{'' if m.wire_safe else ' (unsafe)'} | {m.size_bytes:,} "
            f"| {r.size_vs_baseline:.2f} "
            f"| {_us(m.encode.median_ns)} ± {_us(m.encode.iqr_ns)} "
            f"| {_us(m.decode.median_ns)} ± {_us(m.decode.iqr_ns)} "
            f"| {r.roundtrip_vs_baseline:.2f} | {'yes' if m.roundtrip_ok else 'NO'} |"
        )
    lines += ["", "Charts: [sizes.png](sizes.png), [times.png](times.png).", ""]
    path.write_text("\n".join(lines))
