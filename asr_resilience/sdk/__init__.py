"""Run the official Python SDK (``nls``, the ``sdk`` extra) under a policy.

::

    from asr_resilience.sdk import SdkRecognizer

    recognizer = SdkRecognizer(url, appkey, tokens, "production")
    result = recognizer.recognize(pcm)            # Recognition(text, task_id, duration, attempts)

``nls.NlsSpeechRecognizer`` / ``nls.NlsSpeechTranscriber`` report through callbacks and never
retry: ``on_error`` fires for TaskFailed only; a handshake 403, a refused or dropped connection
and a ping timeout are a bare ``on_close``; ``start()`` returns None after all of them
(docs/protocol.md "Official SDKs"). :class:`SdkRecognizer` and
:class:`SdkTranscriber` run one SDK object per attempt, record what its callbacks said, turn it
into a result or an error (``NlsError`` for TaskFailed, ``TransportError`` for a drop,
``TimeoutError`` for the SDK's timeouts, :class:`SdkParameterError` for arguments it refuses) and
let the policy decide: retry, refresh the token, or raise a typed error. Both block and are
thread-safe.

How a handshake 403 is told apart from a drop: the SDK logs the websocket failure
(``core_on_error:Handshake status 403 Forbidden``) at DEBUG on the ``nls`` logger, in the thread
that then calls ``on_close``. A filter on that logger (:mod:`.trace`) notes the status per thread,
and the attempt's ``on_close`` reads it: 403 refreshes the token (the seed's 403 row), 5xx
retries, another 4xx is fix-client. The adapter enables the ``nls`` logger for DEBUG to get that
record and, with ``quiet_sdk_logs=True`` (the default), lets nothing below WARNING out of the
``nls`` and ``websocket`` loggers.

What the adapter cannot know:

- **Without the log record** (``logging.disable``, a logger replaced, another SDK version) a
  close before the task started could be a 403, a 5xx or a drop. The adapter then treats the
  first such close in a call as a refused token (one refresh) and later ones as transport
  failures.
- **A drop mid-stream** is only an ``on_close`` after ``on_start``: it is retried as an abnormal
  close, by starting the whole audio again on a new task. The SDK cannot resume a stream; use
  ``asr_resilience.Transcriber`` for a live stream that continues across reconnects.
- **Ping timeouts look like drops** (``ping/pong timed out`` at best, in the log).
- **The gateway's close code and reason** never reach the SDK's callbacks.
- **The SDK's own timeouts**: its connect wait is fixed at 10 s whatever ``timeout`` says, and a
  handshake that never answers keeps its thread until the socket is closed (the adapter closes
  it when the attempt gives up).
- **Tokens in the SDK's logs**: the SDK sends the token in ``X-NLS-Token``; its vendored
  websocket client dumps that header at DEBUG on the ``websocket`` logger, and the SDK logs
  TaskFailed bodies (``The token '…' has expired``) at DEBUG on ``nls``. Keep
  ``quiet_sdk_logs=True`` (or those loggers at WARNING); with it off, the adapter's filter still
  scrubs tokens from what it lets through.
"""

from ._adapter import SdkParameterError, SdkRecognizer, SdkTranscriber
from ._trace import SdkLogTap, install_log_tap

__all__ = ["SdkLogTap", "SdkParameterError", "SdkRecognizer", "SdkTranscriber", "install_log_tap"]
