"""Smoke test of the streaming benchmark (``bench.streaming``), small enough for every run.

Only what holds however the run is timed is asserted: every sentence delivered, none twice, none
lost, the buffer within its bound. How much a fault replays depends on how far the sender was
ahead of the gateway when the connection broke (the machine's load decides): the benchmark
reports it (``max_sentences_replayed``) and the README's Performance table quotes it.
"""

from __future__ import annotations


def test_resumed_stream_delivers_every_sentence_once() -> None:
    """A minute of faulty streaming: nothing lost, nothing twice, the buffer within its bound."""
    from bench.streaming import run

    result = run(60, speed=200, fault_after_ms=6000)
    assert result["sentences_delivered"] == result["sentences_expected"] > 10, result
    assert result["missing"] == result["duplicates"] == result["unexpected"] == 0, result
    assert result["index_errors"] == result["gaps"] == 0, result
    assert result["faults"] >= 5, result
    assert result["codes_50000000"] >= 1, result
    assert result["peak_buffer_seconds"] <= result["buffer_bound_seconds"], result
