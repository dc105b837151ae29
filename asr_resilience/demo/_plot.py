"""The demo run as a timeline (matplotlib, extra ``plot``)."""

from __future__ import annotations

from pathlib import Path

from .._extras import requires_extra
from ._record import Recorder

COLOURS = {"ok": "tab:green", "FixClientError": "tab:orange", "FailFastError": "tab:red"}


def timeline(recorder: Recorder, path: str | Path, quota: int) -> None:
    """Calls as bars over time (colour = outcome), retries as dots, the limit, token refreshes."""
    with requires_extra("the demo's timeline"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    fig, (ax, limit_ax) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for c in recorder.calls:
        colour = COLOURS.get(c.outcome, "tab:purple")
        ax.plot([c.start, c.end], [c.index, c.index], color=colour, linewidth=2)
    retries = [(t, f) for t, n, f in recorder.events if n == "retry_scheduled"]
    ax.scatter([t for t, _ in retries], [0] * len(retries), marker="|", color="black", s=60,
               label="retry scheduled")  # fmt: skip
    for t, name, _ in recorder.events:
        if name == "token_invalidated":
            ax.axvline(t, color="tab:blue", alpha=0.15)
        if name == "token_refreshed":
            ax.axvline(t, color="tab:blue", linestyle="--", alpha=0.6)
    ax.set_ylabel("call")
    ax.set_title(
        "asr_resilience demo: calls over time (green ok, orange fix-client, red fail-fast)"
    )
    points = [(t, f.get("new")) for t, n, f in recorder.events if n == "concurrency_limit_changed"]
    if points:
        limit_ax.step([t for t, _ in points], [v for _, v in points], where="post", label="limit")
    limit_ax.axhline(quota, color="tab:red", linestyle=":", label=f"account quota ({quota})")
    limit_ax.set_ylabel("concurrency")
    limit_ax.set_xlabel("seconds")
    limit_ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
