"""The chart: sweep time against eligible rows, and ack latency with and without a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw_chart(figures: dict[str, Any], path: Path) -> str:
    """Sweep time against eligible rows, and ack latency with and without a sweep."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart drawn"
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    curve = figures.get("sweep_curve", [])
    if curve:
        eligible = [p["eligible_acked"] + p["eligible_expired"] for p in curve]
        for key, label, style in (
            ("ours", "ours (batched, committed)", "o-"),
            ("unbounded", "unbounded CTE", "s--"),
        ):
            med = [p[key]["seconds"]["median"] for p in curve]
            low = [m - p[key]["seconds"]["min"] for m, p in zip(med, curve, strict=True)]
            high = [p[key]["seconds"]["max"] - m for m, p in zip(med, curve, strict=True)]
            left.errorbar(eligible, med, yerr=[low, high], fmt=style, capsize=3, label=label)
        left.set_xlabel("eligible rows (10 % of the table)")
        left.set_ylabel("sweep time, s (median, min-max)")
        left.set_title("Upload sweep: time vs eligible rows")
        left.grid(alpha=0.3)
        left.legend()
    inter = figures.get("interference")
    if inter:
        labels = ["p50", "p90", "p99"]
        series = [("no sweep", inter["pooled"]["baseline"], inter["pooled"]["baseline_p90_ms"])]
        for run in (inter, inter.get("smaller_batches")):
            if run:
                series.append(
                    (
                        f"during the sweep, batch size {run['batch_size']:,} per arm",
                        run["pooled"]["during_sweep"],
                        run["pooled"]["during_sweep_p90_ms"],
                    )
                )
        width = 0.8 / len(series)
        for number, (label, pooled, p90) in enumerate(series):
            values = [pooled["p50_ms"] or 0, p90 or 0, pooled["p99_ms"] or 0]
            offset = (number - (len(series) - 1) / 2) * width
            right.bar([x + offset for x in range(len(labels))], values, width, label=label)
        right.set_xticks(list(range(len(labels))), labels)
        right.set_ylabel("ack latency, ms")
        right.set_title(f"Ack latency during a {inter['sweep_rows_deleted']:,}-row sweep (pooled)")
        right.grid(axis="y", alpha=0.3)
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"
