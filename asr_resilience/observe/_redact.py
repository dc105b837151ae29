"""Keep tokens and AccessKey secrets out of every log event.

Three layers: vendor status texts carry the token (``The token 'abc' has expired``), so texts are
scrubbed before they are logged; values the library learns are secret (tokens, AccessKey secrets)
are registered and scrubbed from any string; and fields with secret-sounding names are replaced
wholesale. :func:`redact_processor` applies the same to a user's own structlog pipeline.
"""

from __future__ import annotations

import re
import threading
from collections.abc import MutableMapping
from typing import Any

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"token|secret|password|authorization|signature|access_?key", re.I)
# `token=abc`, `X-NLS-Token: abc`, `Authorization: Bearer abc`: the value after the marker.
_SECRET_AFTER_MARKER = re.compile(
    r"(?P<lead>token=|x-nls-token:\s*|accesskeysecret=|authorization:\s*(?:bearer\s+)?)"
    r"(?P<value>[^'\"‘’\s&,;]+)",
    re.I,
)
# `The token 'abc' has expired`, `"token": "abc"`: a quoted value after the word token.
_QUOTED_TOKEN = re.compile(
    r"(?P<lead>token['\"]?\s*[:=]?\s*['\"‘’])(?P<value>[^'\"‘’]+)(?=['\"‘’])", re.I
)
_MAX_KNOWN = 256
_known: list[str] = []
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Scrub ``value`` from every string the library logs from now on (bounded, newest kept)."""
    if len(value) < 6:
        return  # too short to scrub without mangling ordinary text
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
    for secret in tuple(_known):
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out


def redact_value(key: str, value: Any) -> Any:
    """A field's value as it may be logged."""
    if _SECRET_KEY.search(key) and key not in _SAFE_KEYS:
        return REDACTED if value not in (None, "") else value
    if isinstance(value, str):
        return redact_text(value)
    return value


# Field names that look secret but hold only safe derivatives.
_SAFE_KEYS = frozenset({"token_fingerprint", "token_refreshes", "max_refreshes"})


def redact_processor(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: redact every field of every event (add it to your pipeline)."""
    for key, value in list(event_dict.items()):
        event_dict[key] = redact_value(key, value)
    return event_dict
