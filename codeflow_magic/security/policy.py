"""Which findings stop a run, per policy.

`block` stops only what is plainly harmful (critical); `strict` also stops what is likely
harmful or cannot be checked (high); `warn` reports and runs; `off` does not even report.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError
from ..models import Finding, severity_rank

POLICIES: tuple[str, ...] = ("block", "strict", "warn", "off")

_THRESHOLD: dict[str, str | None] = {
    "block": "critical",
    "strict": "high",
    "warn": None,
    "off": None,
}


def highest_severity(findings: Iterable[Finding]) -> str:
    """The most harmful severity among `findings`, or `none`."""
    best = "none"
    for f in findings:
        if severity_rank(f.severity) > severity_rank(best):
            best = f.severity
    return best


def blocking_findings(findings: Iterable[Finding], policy: str) -> list[Finding]:
    """The findings that stop execution under `policy` (empty: the code may run)."""
    key = policy.lower().strip()
    if key not in _THRESHOLD:
        raise UsageError(f"unknown scan policy {policy!r}; choose one of {', '.join(POLICIES)}")
    threshold = _THRESHOLD[key]
    if threshold is None:
        return []
    rank = severity_rank(threshold)
    return [f for f in findings if severity_rank(f.severity) >= rank]
