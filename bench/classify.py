"""Policy decisions per second: code-only lookups (the common case) and with status text."""

from __future__ import annotations

import time

import asr_resilience as ar

CODES = (40000001, 40000005, 50000000, 52010001, 40000009, 41010105, 403, 59999999, 40270001)


def run(n: int = 1_000_000) -> dict[str, float]:
    policy = ar.load_policy("default")
    decide_code = policy.decide_code
    codes = CODES * (n // len(CODES))
    start = time.perf_counter()
    for code in codes:
        decide_code(code)
    code_only = len(codes) / (time.perf_counter() - start)
    failures = [
        ar.Failure(code=40000001, message="Gateway:ACCESS_DENIED:The token 'abc' has expired!"),
        ar.Failure(code=40000009, message="Too large wav header!"),
        ar.Failure(http_status=503),
        ar.Failure(transport="reset"),
    ] * (n // 40)
    start = time.perf_counter()
    for failure in failures:
        policy.decide(failure)
    with_text = len(failures) / (time.perf_counter() - start)
    return {"decisions_per_second": round(code_only), "with_message_per_second": round(with_text)}


if __name__ == "__main__":
    print(run())
