"""Small arithmetic shared by every report: ratios and the Wilson interval."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when there is nothing to divide by."""
    return None if not denominator else numerator / denominator


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial proportion (95 % by default).

    Why Wilson and not p ± z·√(p(1-p)/n): it stays inside [0, 1] and keeps its coverage for
    small arms and rates near 0 or 1, which is where A/B arms of a new policy start.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
