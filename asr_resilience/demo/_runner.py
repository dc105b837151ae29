"""Drive the demo workload through the resilient clients against the embedded simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .. import _errors as errors
from ..clients import Recognizer, RestRecognizer, SentenceEvent, Transcriber
from ..clients._audio import paced, split_frames
from ..observe import add_hook
from ..policy import Policy
from ..simulator import Simulator
from ..tokens import TokenManager
from ..tokens._aliyun import AliyunTokenProvider
from . import _plan as plan
from ._record import CallRecord, Recorder, current_call

Progress = Callable[[int, int], None]


async def run(
    policy: Policy,
    recorder: Recorder,
    progress: Progress | None = None,
    *,
    fleet_redis: str | None = None,
) -> dict[str, object]:
    """Run the whole workload, and the fleet part when ``fleet_redis`` names a Redis.

    Fills ``recorder``; returns the simulator's counters (``simulator``: the whole run,
    ``chaos_simulator``: before the fleet part began) and the fleet part's figures.
    """
    calls = plan.workload()
    remove = add_hook(recorder.hook)
    try:
        async with Simulator(
            accounts=plan.accounts(), scenario=plan.scenario(), config=plan.config()
        ) as sim:
            account = plan.accounts()[0]
            # Tokens come from the simulator's CreateToken through the vendor's official client.
            provider = AliyunTokenProvider(
                account.access_key_id, account.access_key_secret, endpoint=sim.meta_url
            )
            tokens = TokenManager(provider)
            done = 0
            gate = asyncio.Semaphore(plan.CONCURRENCY)

            async def one(call: plan.Call) -> None:
                nonlocal done
                async with gate:
                    record = CallRecord(
                        call.index, call.kind, call.expected, call.why, recorder.now()
                    )
                    recorder.calls.append(record)
                    current_call.set(call.index)  # this task's events name their call
                    try:
                        record.attempts = await _perform(
                            call, sim.gateway_url, sim.rest_url, tokens, policy, recorder
                        )
                        record.outcome = "ok"
                    except errors.ResilienceError as exc:
                        record.outcome = type(exc).__name__
                        record.code = exc.code
                        record.attempts = len(exc.attempts)
                    except Exception as exc:  # an unexpected failure is reported, not hidden
                        record.outcome = f"unexpected {type(exc).__name__}: {exc}"
                    record.end = recorder.now()
                done += 1
                if progress is not None:
                    progress(done, len(calls))

            await asyncio.gather(*(one(call) for call in calls))
            result: dict[str, object] = {
                "provider_calls": tokens.provider_calls,
                "chaos_simulator": sim.stats.snapshot(),
            }
            if fleet_redis is not None:
                result["fleet"] = await _fleet(sim, fleet_redis, recorder)
            result["simulator"] = sim.stats.snapshot()
            return result
    finally:
        remove()


async def _perform(
    call: plan.Call,
    gateway: str,
    rest: str,
    tokens: TokenManager,
    policy: Policy,
    recorder: Recorder,
) -> int:
    """One call; returns the attempts it took."""
    scope = plan.APPKEY  # one quota, one budget for the account, whichever client calls
    if call.kind == "one-sentence":
        recognizer = Recognizer(
            gateway, call.appkey, tokens, policy, scope=scope, params=call.params
        )
        result = await recognizer.recognize(call.audio, format="pcm", sample_rate=call.sample_rate)
        return result.attempts
    if call.kind == "rest":
        rest_client = RestRecognizer(
            rest, call.appkey, tokens, policy, scope=scope, params=call.params
        )
        outcome = await rest_client.recognize(
            call.audio, format="pcm", sample_rate=call.sample_rate
        )
        return outcome.attempts
    return await _stream(call, gateway, tokens, policy, scope, recorder)


async def _stream(
    call: plan.Call,
    gateway: str,
    tokens: TokenManager,
    policy: Policy,
    scope: str,
    recorder: Recorder,
) -> int:
    """The real-time transcription: resumed across the scenario's stream faults, then checked
    sentence by sentence against what the audio itself contains."""
    transcriber = Transcriber(gateway, call.appkey, tokens, policy, scope=scope)
    ends: list[SentenceEvent] = []
    async with transcriber:

        async def collect() -> None:
            async for event in transcriber:
                if isinstance(event, SentenceEvent) and event.kind == "end":
                    ends.append(event)

        collector = asyncio.create_task(collect())
        try:
            # Faster than real time (the demo has a minute), slow enough that little audio is
            # in flight when a fault strikes: a resume then replays about one sentence.
            frames = paced(split_frames(call.audio, 12800), 32000 * plan.STREAM_SPEED)
            await transcriber.send_all(frames, realtime=False)
            await transcriber.finish()
        finally:
            await asyncio.gather(collector, return_exceptions=True)
    expected = plan.expected_sentences(call.audio)
    found = [(e.index, e.text) for e in ends]
    wanted = [(i, s.text) for i, s in enumerate(expected, 1)]
    close = all(
        abs(e.begin_time - s.begin_time) <= 20 and abs(e.end_time - s.end_time) <= 20
        for e, s in zip(ends, expected, strict=False)
    )
    stats = transcriber.stats
    recorder.stream = {
        "sentences_expected": len(expected),
        "sentences_delivered": len(ends),
        "identical": found == wanted and close,
        "reconnects": stats.reconnects,
        "replayed_seconds": stats.replayed_seconds,
        "duplicates_dropped": stats.duplicates,
        "gaps": stats.gaps,
        "peak_buffer_seconds": stats.peak_buffer_seconds,
    }
    if found != wanted or not close:
        raise RuntimeError(
            f"the stream's sentences differ from the audio's: {len(ends)} delivered, "
            f"{len(expected)} expected"
        )
    return transcriber.attempts or 1


async def _fleet(sim: Simulator, url: str, recorder: Recorder) -> dict[str, object]:
    """Worker processes sharing the fleet account's quota through Redis."""
    from . import _audio as audio
    from . import _fleet as fleet

    before = sim.stats.snapshot()["throttled"]
    began = recorder.now()
    offset = time.time() - time.monotonic()  # worker times are wall clock
    outcome = await fleet.run(
        sim.gateway_url, sim.token("fleet"), url, audio.speech([(600, 180.0)], gap_ms=300)
    )
    records = outcome["records"]
    assert isinstance(records, list)
    base = len(recorder.calls)
    for n, (result, attempts, start, end) in enumerate(records):
        record = CallRecord(base + n, "fleet", "ok", "fleet worker", start - offset - recorder.t0)
        record.part = "fleet"
        record.end = end - offset - recorder.t0
        record.outcome = result
        record.attempts = attempts
        recorder.calls.append(record)
    stats = sim.stats.snapshot()
    return {
        "workers": outcome["workers"],
        "calls": len(records),
        "quota": fleet.QUOTA,
        "concurrency_per_worker": fleet.CONCURRENCY,
        "throttled": stats["throttled"] - before,
        "max_concurrent": stats["max_concurrent"].get("fleet", 0),
        "began": round(began, 3),
        "ended": round(recorder.now(), 3),
    }
