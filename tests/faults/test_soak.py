"""The soak: 200 requests through `codeflow batch` with API faults and kernel deaths injected."""

from __future__ import annotations

import pytest
from needs import REPO_ROOT
from soak import run_soak

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def test_soak_accounts_for_every_request_and_memory_stays_flat() -> None:
    summary = run_soak(n=200, parallel=4, seed=7)
    report = summary.render()
    out = REPO_ROOT / "test-artifacts" / "soak-summary.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report + "\n", encoding="utf-8")
    print(report)
    assert summary.records_out == summary.requests_in == 200, report
    assert not summary.missing and not summary.duplicated, report
    assert not summary.wrong, report
    # Each injected fault was actually exercised and ended the way its cause dictates.
    for scenario in ("api_transient", "api_persistent", "kernel_exit", "kernel_segfault"):
        assert summary.scenarios[scenario] > 0, report
    assert summary.outcomes["model API unavailable (529)"] == summary.scenarios["api_persistent"]
    # Requests whose model stayed unavailable make the whole batch say so in its status.
    assert summary.exit_status == 5, summary.stderr_tail
    assert summary.kernels_after == 0, report
    # Flat memory: the second half of the run adds (almost) nothing to the first half's.
    assert summary.rss_end_mb - summary.rss_mid_mb < 25, report
