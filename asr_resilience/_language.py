"""Which language hints and explanations use: explicit, else the environment, else the locale."""

from __future__ import annotations

import os
from typing import Literal

Lang = Literal["en", "zh"]
ENV_VAR = "ASR_RESILIENCE_LANG"


def resolve_language(explicit: str | None = None) -> Lang:
    """``explicit``, else ``ASR_RESILIENCE_LANG``, else ``zh`` for a Chinese locale, else ``en``."""
    for candidate in (explicit, os.environ.get(ENV_VAR)):
        if candidate in ("en", "zh"):
            return "zh" if candidate == "zh" else "en"
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(var)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"
