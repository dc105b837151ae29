"""Secrets out of every text the library produces: log events and exceptions alike.

The bottom of the stack (beside ``_errors``), so that an exception can scrub its own text when it
is built. Three layers: vendor status texts carry the token (``The token 'abc' has expired``),
so texts are scrubbed by pattern; values the library learns are secret (tokens, AccessKey
secrets, STS security tokens, proxy passwords) are registered and scrubbed from any string; and
:func:`scrub_exception` cleans a whole exception chain (``__cause__``, ``__context__``, ``args``,
notes), replacing an exception of another library whose rendering holds a secret by a
:class:`RedactedError` that keeps its type's name, its scrubbed text and its traceback.
``asr_resilience.observe`` re-exports the public part.
"""

from __future__ import annotations

import re
import threading
from typing import NoReturn

__all__ = [
    "REDACTED",
    "RedactedError",
    "raise_scrubbed",
    "redact_text",
    "register_secret",
    "scrub_exception",
]

REDACTED = "<redacted>"
# `token=abc`, `X-NLS-Token: abc`, `Authorization: Bearer abc`, an STS token in a query
# (`SecurityToken=`) or header (`x-acs-security-token:`): the value after the marker.
_SECRET_AFTER_MARKER = re.compile(
    r"(?P<lead>token=|x-nls-token:\s*|accesskeysecret=|access_key_secret=|x-acs-security-token:\s*"
    r"|authorization:\s*(?:bearer\s+)?)"
    r"(?P<value>[^'\"‘’\s&,;]+)",
    re.I,
)
# `The token 'abc' has expired`, `"token": "abc"`, `"SecurityToken": "abc"`: a quoted value
# after the word token (or secret).
_QUOTED_TOKEN = re.compile(
    r"(?P<lead>(?:token|secret)['\"]?\s*[:=]?\s*['\"‘’])(?P<value>[^'\"‘’]+)(?=['\"‘’])", re.I
)
# `http://user:pass@proxy:3128`: the password in a URL's user information (a proxy's login).
_URL_PASSWORD = re.compile(
    r"(?P<lead>\b[a-z][a-z0-9+.-]*://[^/@\s:'\"]*:)(?P<value>[^/@\s'\"]+)(?=@)", re.I
)
_MAX_KNOWN = 256
_known: list[str] = []
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Scrub ``value`` from every string the library logs or raises from now on.

    Bounded (the newest 256 are kept); values under 6 characters are ignored, as they could not
    be scrubbed without mangling ordinary text.
    """
    if len(value) < 6:
        return
    with _lock:
        if value in _known:
            return
        _known.append(value)
        del _known[:-_MAX_KNOWN]


def redact_text(text: str) -> str:
    """``text`` with tokens and known secrets replaced by ``<redacted>``."""
    if not text:
        return text
    out = _SECRET_AFTER_MARKER.sub(lambda m: m.group("lead") + REDACTED, text)
    out = _QUOTED_TOKEN.sub(lambda m: m.group("lead") + REDACTED, out)
    out = _URL_PASSWORD.sub(lambda m: m.group("lead") + REDACTED, out)
    for secret in tuple(_known):
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out


class RedactedError(Exception):
    """Stands in, in an exception chain, for another library's exception whose text or
    arguments held a secret: ``"<module>.<type>: <scrubbed text>"``, same traceback."""


def _leaks(exc: BaseException) -> bool:
    try:
        texts = [str(exc), repr(exc), repr(exc.args), repr(getattr(exc, "__notes__", ""))]
    except Exception:
        return True  # a rendering that fails cannot be checked: assume the worst
    return any(redact_text(text) != text for text in texts)


def _scrub_own(exc: BaseException) -> None:
    """Redact, in place, the strings an exception keeps: ``args``, attributes, notes."""
    args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)
    if args != exc.args:
        exc.args = args
    fields = getattr(exc, "__dict__", None)
    if fields:
        for key, value in list(fields.items()):
            if isinstance(value, str):
                clean = redact_text(value)
                if clean != value:
                    fields[key] = clean
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        notes[:] = [redact_text(n) if isinstance(n, str) else n for n in notes]


def _stand_in(exc: BaseException) -> BaseException:
    kind = type(exc)
    try:
        text = redact_text(str(exc))
    except Exception:
        text = "(its text could not be read)"
    name = f"{kind.__module__}.{kind.__qualname__}"
    stand_in = RedactedError(f"{name}: {text}" if text else name)
    stand_in.__traceback__ = exc.__traceback__
    stand_in.__cause__ = exc.__cause__
    stand_in.__context__ = exc.__context__
    stand_in.__suppress_context__ = exc.__suppress_context__
    return stand_in


def scrub_exception(exc: BaseException) -> BaseException:
    """Remove secrets from ``exc`` and its whole chain, in place; returns ``exc``.

    The library's own exceptions (and ``exc`` itself) get their ``args``, string attributes and
    notes redacted; an exception of another library further down the chain whose ``str``,
    ``repr`` or ``args`` holds a secret is replaced by a :class:`RedactedError`.
    """
    from ._errors import AsrResilienceError  # _errors imports this module

    seen: set[int] = set()
    replaced: dict[int, tuple[BaseException, BaseException]] = {}  # id → (original, stand-in)
    pending = [exc]
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        if link is exc or isinstance(link, AsrResilienceError | RedactedError):
            _scrub_own(link)
        suppress = link.__suppress_context__
        for attribute in ("__cause__", "__context__"):
            nxt = getattr(link, attribute)
            if nxt is None:
                continue
            if id(nxt) in replaced:
                nxt = replaced[id(nxt)][1]
                setattr(link, attribute, nxt)
            elif not isinstance(nxt, AsrResilienceError | RedactedError) and _leaks(nxt):
                stand_in = _stand_in(nxt)
                replaced[id(nxt)] = (nxt, stand_in)
                setattr(link, attribute, stand_in)
                nxt = stand_in
            pending.append(nxt)
        link.__suppress_context__ = suppress  # assigning __cause__ sets it: keep the original
    return exc


def raise_scrubbed(error: BaseException, cause: BaseException | None) -> NoReturn:
    """``raise error from cause``, with the chain scrubbed once Python has completed it (the
    context is set by the raise itself)."""
    if cause is not None and not _own(cause) and _leaks(cause):
        cause = _stand_in(cause)
    try:
        raise error from cause
    except BaseException as raised:
        scrub_exception(raised)
        raise


def _own(exc: BaseException) -> bool:
    from ._errors import AsrResilienceError

    return isinstance(exc, AsrResilienceError | RedactedError)
