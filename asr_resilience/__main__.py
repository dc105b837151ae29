"""``python -m asr_resilience``: the command line."""

from .cli import main

raise SystemExit(main())
