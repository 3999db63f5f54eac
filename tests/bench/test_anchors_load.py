"""The benchmark's rounds merged into one run per case and server (bench._anchors_load)."""

from __future__ import annotations

import pytest

from bench._anchors_load import Run, merged, parse_wrk

WRK = """Running 5s test @ http://127.0.0.1:8000
  2 threads and 16 connections
  Latency Distribution
     50%    2.10ms
     75%    3.00ms
     90%    4.00ms
     99%   12.50ms
  1000 requests in 5.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:    200.00
"""


def test_wrk_output_is_read():
    r = parse_wrk(WRK)
    assert (r.rps, r.requests, r.p50_ms, r.p99_ms, r.non2xx) == (200.0, 1000, 2.1, 12.5, 3)
    assert r.errors == {"read": 2, "timeout": 1}


def test_rounds_merge_into_their_median_rate():
    """The median round's req/s (a machine's stall in one round does not decide the
    case), the worst p99, every count summed, each round's rate kept."""
    rounds = [
        Run(100.0, 500, 5.0, 40.0, 1, {"read": 1}, distinct=500, total=500),
        Run(300.0, 1500, 2.0, 9.0, 0, {"read": 2, "timeout": 1}, distinct=1499, total=1500),
        Run(280.0, 1400, 2.0, 8.0, 0, {}, distinct=1400, total=1400),
        Run(3.0, 6, 9000.0, 12000.0, 0, {}, distinct=6, total=6),  # a stalled round
    ]
    m = merged(rounds)
    assert m.rps == pytest.approx((100.0 + 280.0) / 2)
    assert (m.requests, m.p99_ms, m.non2xx) == (3406, 12000.0, 1)
    assert m.errors == {"read": 3, "timeout": 1}
    assert (m.distinct, m.total) == (3405, 3406)
    assert m.rounds == [100.0, 300.0, 280.0, 3.0]
    assert merged(rounds[1:]).rps == 280.0
    assert merged(rounds[:1]) is rounds[0]
