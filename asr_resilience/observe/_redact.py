"""Keep tokens and AccessKey secrets out of every log event.

Three layers: vendor status texts carry the token (``The token 'abc' has expired``), so texts are
scrubbed before they are logged; values the library learns are secret (tokens, AccessKey secrets)
are registered and scrubbed from any string (both in ``asr_resilience/_secrets.py``, which the
exceptions use too); and fields with secret-sounding names are replaced wholesale.
:func:`redact_processor` applies the same to a user's own structlog pipeline.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

from .._secrets import REDACTED, redact_text, register_secret

__all__ = ["REDACTED", "redact_processor", "redact_text", "redact_value", "register_secret"]

_SECRET_KEY = re.compile(r"token|secret|password|authorization|signature|access_?key", re.I)


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
