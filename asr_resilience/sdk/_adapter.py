"""``SdkRecognizer`` and ``SdkTranscriber``: the official SDK's classes, one attempt at a time,
under a policy.

Each attempt builds a new SDK object with an :class:`~.tracker.AttemptTracker`'s callbacks,
``start()``, sends the audio, ``stop()``, waits for the close, and ends the connection; the
tracker's outcome is the attempt's result or the error the policy classifies. Attempts run in
the execution core (``asr_resilience.retry``), so retries, token refreshes, the deadline, the
retry budget, the breaker and the limiter are the policy's, as for the project's own clients.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from .._endpoints import resolve_url
from .._errors import FixClientError
from ..clients._credentials import check_token, resolve_appkey, resolve_tokens
from ..clients._results import Recognition, SentenceEvent
from ..retry._attempt import Attempt
from ..retry._call import CallState
from ..retry._engine import run_sync
from ..retry._overrides import call_limits
from ..retry._settings import PolicyLike, make_settings, resolve_policy
from ..tokens import TokenManager
from . import _nls
from ._continuation import Continuation
from ._trace import install_log_tap
from ._tracker import AttemptTracker, CallNotes, Finished

__all__ = ["SdkParameterError", "SdkRecognizer", "SdkTranscriber"]

# start() arguments the adapter sets itself.
_OWN_START_ARGS = frozenset({"self", "aformat", "sample_rate", "timeout"})


class SdkParameterError(FixClientError, ValueError):
    """The official SDK refused a parameter before connecting (``InvalidParameter``, or its
    ``ValueError`` for an unsupported format): a local mistake, never retried."""


class _SdkAdapter:
    """What both adapters share: settings, the attempt loop, and one attempt's steps."""

    _service: ClassVar[Literal["recognizer", "transcriber"]]
    _sdk_class: ClassVar[str]
    _service_verb: ClassVar[str]

    def __init__(
        self,
        url: str | None = None,
        appkey: str = "",
        tokens: TokenManager | str | None = None,
        policy: PolicyLike = None,
        *,
        scope: str | None = None,
        start_kwargs: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        quiet_sdk_logs: bool = True,
        region: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url = resolve_url("gateway", url, region)
        self.appkey = resolve_appkey(appkey)
        self.tokens = resolve_tokens(tokens)
        self.policy = resolve_policy(policy)
        self.scope = scope or self.appkey
        self.timeout = timeout
        self._nls = _nls.load()
        self._cls: Any = getattr(self._nls, self._sdk_class)
        self.start_kwargs: dict[str, Any] = dict(start_kwargs or {})
        self._check_start_kwargs()
        self._tap = install_log_tap(quiet=quiet_sdk_logs)
        exc = self._nls.exception
        self._timeouts: tuple[type[BaseException], ...] = (
            exc.StartTimeoutException,
            exc.ConnectionTimeout,
        )
        # What send_audio()/stop() raise once the connection is gone: the tracker tells why.
        self._gone: tuple[type[BaseException], ...] = (
            exc.NotStartException,
            exc.ConnectionUnavailable,
            self._nls.websocket.WebSocketException,
            OSError,
        )
        self._settings = make_settings(
            self.policy,
            tokens=self.tokens,
            scope=self.scope,
            function=f"{type(self).__name__}.{self._service_verb}",
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, appkey={self.appkey!r})"

    def _check_start_kwargs(self) -> None:
        accepted = set(inspect.signature(self._cls.start).parameters) - _OWN_START_ARGS
        wrong = sorted(set(self.start_kwargs) - accepted)
        if wrong:
            takes = ", ".join(sorted(accepted))
            raise ValueError(
                f"start_kwargs: {', '.join(wrong)} not accepted (the adapter sets aformat, "
                f"sample_rate and timeout; {self._sdk_class}.start takes {takes})"
            )

    # -- the call --------------------------------------------------------------------------------

    def _run(
        self,
        audio: bytes,
        aformat: str,
        sample_rate: int,
        chunk: int,
        pace: int | None,
        deadline: float | None,
        max_attempts: int | None,
        continuation: Continuation | None = None,
    ) -> tuple[AttemptTracker, Finished, int]:
        """The call: attempts until one completes. With a ``continuation`` (the transcriber)
        each attempt sends the audio from its offset and hands it its sentences."""
        limit, attempts = call_limits(deadline, max_attempts)
        if chunk <= 0:
            raise ValueError("chunk must be a positive number of bytes")
        data = bytes(audio)
        call = CallNotes()

        def body(attempt: Attempt) -> tuple[AttemptTracker, Finished, int]:
            # A blocking SDK cannot be interrupted: every wait gets the time left instead.
            limit = min(self.timeout, attempt.remaining)
            audio = data[continuation.offset :] if continuation is not None else data
            tracker, finished = self._attempt(
                attempt.token, call, audio, aformat, sample_rate, chunk, pace, limit, continuation
            )
            return tracker, finished, attempt.number

        settings = self._settings
        return run_sync(CallState(settings, settings.clock.monotonic(), limit, attempts), body)

    def _attempt(
        self,
        token: str,
        call: CallNotes,
        audio: bytes,
        aformat: str,
        sample_rate: int,
        chunk: int,
        pace: int | None,
        limit: float,
        continuation: Continuation | None = None,
    ) -> tuple[AttemptTracker, Finished]:
        """One SDK object, one connection; raises what the tracker's outcome says.

        ``limit`` (seconds) bounds each of the SDK's waits: its timeout, or the time left. The
        ``continuation`` takes the sentences the attempt delivered, whatever its outcome.
        """
        check_token(token)  # the SDK would send a broken header and retry as a drop
        self._tap.ensure_enabled()
        tracker = AttemptTracker(self._tap, self._service)
        try:
            sdk = self._cls(url=self.url, token=token, appkey=self.appkey, **tracker.callbacks())
        except self._nls.exception.InvalidParameter as exc:
            raise SdkParameterError(f"the official SDK refused its arguments: {exc}") from exc
        tracker.watch(sdk)
        try:
            self._start(sdk, aformat, sample_rate, limit)
            if tracker.started.is_set():
                self._send(sdk, tracker, audio, chunk, pace)
                self._stop(sdk, tracker, limit)
            # start() returns on TaskFailed before the SDK calls on_error, and on_close follows
            # every end (Completed, TaskFailed, a drop): wait for it rather than guess.
            tracker.wait_closed(limit)
            return tracker, tracker.outcome(call, waited=limit)
        finally:
            tracker.release(limit)
            if continuation is not None:
                continuation.take(tracker.sentences)

    def _start(self, sdk: Any, aformat: str, sample_rate: int, limit: float) -> None:
        exc = self._nls.exception
        try:
            sdk.start(aformat=aformat, sample_rate=sample_rate, timeout=limit, **self.start_kwargs)
        except self._timeouts as error:
            raise TimeoutError(f"the official SDK's start() timed out: {error}") from error
        except (exc.InvalidParameter, ValueError) as error:
            raise SdkParameterError(f"the official SDK refused the request: {error}") from error

    def _send(
        self, sdk: Any, tracker: AttemptTracker, audio: bytes, chunk: int, pace: int | None
    ) -> None:
        for offset in range(0, len(audio), chunk):
            # The gateway may end the task on its own (TaskFailed, a drop): stop sending. The
            # transcriber's send_audio would drop the audio silently after a close.
            if tracker.over:
                return
            piece = audio[offset : offset + chunk]
            try:
                sdk.send_audio(piece)
            except self._gone:
                return
            if pace and tracker.closed.wait(len(piece) / pace):
                return

    def _stop(self, sdk: Any, tracker: AttemptTracker, limit: float) -> None:
        if tracker.over:
            return
        try:
            sdk.stop(timeout=limit)
        except self._nls.exception.StopTimeoutException as error:
            raise TimeoutError(f"the official SDK's stop() timed out: {error}") from error
        except self._gone:
            return


class SdkRecognizer(_SdkAdapter):
    """``nls.NlsSpeechRecognizer`` (one-sentence recognition) under a policy; thread-safe.

    ``tokens``: a :class:`~asr_resilience.TokenManager` or a token string (None:
    ``$NLS_TOKEN``); ``appkey`` defaults to ``$NLS_APPKEY``; ``url`` / ``region`` choose the
    gateway as :class:`~asr_resilience.clients.Recognizer`'s do; ``policy``: a Policy, a file, a
    shipped name, or None for ``$ASR_RESILIENCE_POLICY`` / ``default``; ``scope`` names the
    retry budget, breaker and limiter (default: the appkey). ``start_kwargs`` go to the SDK's
    ``start()`` (``enable_punctuation_prediction``, ``ex={...}`` for extra payload fields, ...).
    ``timeout`` (seconds) bounds the start, the stop and the wait for the close; a timeout is
    retried as a transport failure. ``quiet_sdk_logs``: keep the SDK's loggers (``nls``,
    ``websocket``) below WARNING silent, process-wide; their DEBUG output carries tokens.
    """

    _service = "recognizer"
    _sdk_class = "NlsSpeechRecognizer"
    _service_verb = "recognize"

    def recognize(
        self,
        audio: bytes,
        *,
        aformat: str = "pcm",
        sample_rate: int = 16000,
        chunk: int = 3200,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> Recognition:
        """Recognise ``audio`` (≤ 60 s, in ``aformat``), sent ``chunk`` bytes at a time.

        ``deadline`` (seconds) bounds this whole call instead of the policy's deadline (every
        SDK wait gets at most the time left); ``max_attempts`` caps every rule's attempts for
        this call. Both must be positive (``ValueError`` otherwise).

        Blocks; raises the policy's typed errors (``FixClientError``, ``FailFastError``,
        ``RetryExhaustedError``, ``TokenRefreshError``, ...) with the last failure as
        ``__cause__``, and :class:`SdkParameterError` for arguments the SDK refuses.
        """
        _, finished, number = self._run(
            audio, aformat, sample_rate, chunk, None, deadline, max_attempts
        )
        return Recognition(finished.text, finished.task_id, finished.duration, number)


class SdkTranscriber(_SdkAdapter):
    """``nls.NlsSpeechTranscriber`` (real-time transcription) under a policy; thread-safe.

    The arguments are :class:`SdkRecognizer`'s. After a failed attempt the next one (a new
    SDK object, a new task) starts at the end of the last sentence delivered, as
    :class:`~asr_resilience.Transcriber` resumes: every sentence once, on the file's times
    (PCM; other formats start again from the beginning). The policy's attempts and deadline
    bound the whole call.
    """

    _service = "transcriber"
    _sdk_class = "NlsSpeechTranscriber"
    _service_verb = "transcribe"

    def transcribe(
        self,
        audio: bytes,
        *,
        aformat: str = "pcm",
        sample_rate: int = 16000,
        chunk: int = 3200,
        realtime: bool = True,
        deadline: float | None = None,
        max_attempts: int | None = None,
    ) -> list[SentenceEvent]:
        """Transcribe ``audio``; its sentences' end events, across the attempts it took.

        ``deadline`` and ``max_attempts`` override the policy's for this call, as
        :meth:`SdkRecognizer.recognize`'s do.

        ``realtime`` paces PCM at real time, as the service expects (docs/protocol.md "Limits": no
        bursts far faster than real time); pass False only for short audio or a simulator.
        Blocks; raises as :meth:`SdkRecognizer.recognize` does.
        """
        pcm = aformat == "pcm"
        pace = 2 * sample_rate if realtime and pcm else None
        continuation = Continuation(2 * sample_rate if pcm else None)
        self._run(audio, aformat, sample_rate, chunk, pace, deadline, max_attempts, continuation)
        return continuation.sentences
