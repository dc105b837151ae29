"""Type-check only (mypy runs on tests/; pytest does not collect this file).

The public decorators keep the signatures of what they wrap, and the block form types its
attempts. Nothing here is called at import time: every check sits in a function.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any, Protocol

import asr_resilience as ar
from asr_resilience.tokens import StaticToken, TokenManager

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # mypy checks as Python 3.10 (pyproject.toml)
    from typing_extensions import assert_type


class SyncRecognize(Protocol):
    """``(x: int, *, token: str = ...) -> str``"""

    def __call__(self, x: int, *, token: str = ...) -> str: ...


class AsyncRecognize(Protocol):
    """``async (x: int, *, token: str = ...) -> str``"""

    def __call__(self, x: int, *, token: str = ...) -> Coroutine[Any, Any, str]: ...


def _setup() -> tuple[ar.Policy, TokenManager]:
    return ar.load_policy("default"), TokenManager(StaticToken("typing-only-token"))


def check_sync_function() -> None:
    policy, tokens = _setup()

    @ar.resilient(policy, tokens=tokens)
    def f(x: int, *, token: str = "") -> str:
        return f"{x}{token}"

    keeps: SyncRecognize = f
    assert_type(f(1), str)
    assert_type(f(1, token="t"), str)
    assert_type(f(x=1), str)
    result: str = keeps(1)
    del result


def check_attempt_keyword() -> None:
    @ar.resilient("default")
    def f(path: str, *, attempt: ar.Attempt | None = None) -> float:
        return attempt.remaining if attempt is not None else 0.0

    assert_type(f("x"), float)


def check_policy_forms() -> None:
    @ar.resilient()
    def by_env() -> int:
        return 1

    @ar.resilient("default", scope="x", check_result=True)
    def by_name(body: dict[str, Any]) -> dict[str, Any]:
        return body

    assert_type(by_env(), int)
    assert_type(by_name({}), dict[str, Any])


def check_async_function() -> None:
    policy, tokens = _setup()

    @ar.resilient(policy, tokens=tokens)
    async def g(x: int, *, token: str = "") -> str:
        return f"{x}{token}"

    keeps: AsyncRecognize = g
    coro = assert_type(g(1), Coroutine[Any, Any, str])
    coro.close()
    del keeps

    async def use() -> None:
        assert_type(await g(1), str)
        text: str = await g(2, token="t")
        del text

    del use


class Recognizer:
    """Decorated methods keep ``self`` binding and their signatures."""

    def __init__(self) -> None:
        self.prefix = "p"

    @ar.resilient("default")
    def recognize(self, audio: bytes, *, token: str = "") -> str:
        return self.prefix + audio.decode()

    @ar.resilient("default")
    async def arecognize(self, audio: bytes, *, token: str = "") -> str:
        return self.prefix + audio.decode()


def check_method() -> None:
    recognizer = Recognizer()
    assert_type(recognizer.recognize(b"pcm"), str)
    assert_type(recognizer.recognize(b"pcm", token="t"), str)
    coro = assert_type(recognizer.arecognize(b"pcm"), Coroutine[Any, Any, str])
    coro.close()


def check_retrying() -> None:
    policy, tokens = _setup()
    for attempt in ar.retrying(policy, tokens=tokens):
        assert_type(attempt, ar.Attempt)
        with attempt as entered:
            assert_type(entered, ar.Attempt)
            assert_type(attempt.token, str)
            assert_type(attempt.number, int)


async def check_async_retrying() -> None:
    policy, tokens = _setup()
    async for attempt in ar.retrying(policy, tokens=tokens, scope="x", name="stream"):
        assert_type(attempt, ar.Attempt)
        with attempt:
            assert_type(attempt.token, str)
            assert_type(attempt.number, int)


def check_retry_with_and_policy() -> None:
    policy, tokens = _setup()

    @ar.resilient(policy, tokens=tokens, deadline=5, max_attempts=2)
    def f(x: int, *, token: str = "") -> str:
        return f"{x}{token}"

    @ar.resilient("default")
    async def g(x: int) -> str:
        return str(x)

    assert_type(f.policy, ar.Policy)
    faster = f.retry_with(deadline=1.5, max_attempts=1, scope="other", tokens=None)
    assert_type(faster(1), str)
    keeps: SyncRecognize = faster
    del keeps
    assert_type(faster.retry_with(policy="batch").policy, ar.Policy)
    coro = assert_type(g.retry_with(max_attempts=3)(1), Coroutine[Any, Any, str])
    coro.close()
    assert_type(Recognizer.recognize.retry_with(deadline=2)(Recognizer(), b"pcm"), str)
    assert_type(Recognizer.recognize.policy, ar.Policy)


def check_block_form_overrides() -> None:
    for attempt in ar.retrying("default", deadline=2.0, max_attempts=3):
        with attempt:
            assert_type(attempt.remaining, float)
