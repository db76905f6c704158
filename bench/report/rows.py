"""A row of the printed table, its two constructors, and how a cell prints."""

from __future__ import annotations

from typing import Any

Row = tuple[str, Any, Any, Any, str]


def stat(label: str, stat: dict[str, Any] | None, unit: str) -> Row:
    stat = stat or {}
    return (label, stat.get("median"), stat.get("min"), stat.get("max"), unit)


def one(label: str, value: Any, unit: str = "") -> Row:
    return (label, value, None, None, unit)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
