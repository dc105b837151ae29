"""Standard-library loggers whose records are redacted before any handler sees them.

websockets logs every handshake header at DEBUG, ``X-NLS-Token`` included; the clients and the
simulator hand it one of these loggers, so turning on DEBUG never prints a token.
"""

from __future__ import annotations

import logging

from ._redact import redact_text


class RedactFilter(logging.Filter):
    """Rewrite a record's message with tokens and known secrets replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg = clean
            record.args = ()
        return True


def redacting_logger(name: str) -> logging.Logger:
    """The logger ``name`` with a :class:`RedactFilter` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactFilter) for f in logger.filters):
        logger.addFilter(RedactFilter())
    return logger
