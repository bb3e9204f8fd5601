"""How numbers read in the report: significant digits for times, no exponents, n/a for absent."""

from __future__ import annotations

import math

from .targets import BYTES_PER_MB

NA = "n/a"


def sig(value: float | None, digits: int = 3) -> str:
    """`digits` significant digits, never in exponent form; large values keep all their integer
    digits (1,234 not 1.23e+03) so nothing reads smaller than it is."""
    if value is None:
        return NA
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    return f"{value:,.{decimals}f}"


def against(value: float, threshold: float) -> str:
    """`value` with enough digits that, as printed, it sits on the same side of `threshold` as
    the value itself: 2.9996 ms against `< 3 ms` prints 2.9996, not 3.00 (a seeming failure),
    and 999.96 img/s against `>= 1000` prints 999.96, not 1,000."""
    def side(x: float) -> int:
        return (x > threshold) - (x < threshold)

    for digits in range(3, 10):
        text = sig(value, digits)
        if side(float(text.replace(",", ""))) == side(value):
            return text
    return text


def threshold(value: float) -> str:
    return f"{value:,.12g}"


def size(size_bytes: int | None) -> str:
    return NA if size_bytes is None else f"{sig(size_bytes / BYTES_PER_MB)} MB"


def accuracy(acc: dict | None) -> str:
    if not isinstance(acc, dict) or acc.get("correct") is None or not acc.get("total"):
        return NA
    correct, total = acc["correct"], acc["total"]
    return f"{correct}/{total} ({correct / total * 100:.1f} %)"
