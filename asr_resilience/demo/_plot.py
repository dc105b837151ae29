"""The demo run as a timeline (matplotlib, extra ``plot``).

Top: every call as a bar from start to end, coloured by how it ended (first-try successes
apart from those that needed retries), with a marker where each retry was scheduled and where
the stream resumed; token invalidations and refreshes as vertical lines. Bottom: the adaptive
limit of the chaos part against the account's quota, and the fleet part's shared quota over the
time the fleet ran. Every marker has its legend entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._extras import requires_extra
from ._record import CallRecord, Recorder

STYLES = {
    "first try": "tab:green",
    "after retries": "tab:blue",
    "FixClientError": "tab:orange",
    "FailFastError": "tab:red",
    "other error": "tab:purple",
}


def _style(call: CallRecord) -> str:
    if call.outcome == "ok":
        return "first try" if call.attempts <= 1 else "after retries"
    return call.outcome if call.outcome in STYLES else "other error"


def timeline(
    recorder: Recorder, path: str | Path, quota: int, fleet: dict[str, Any] | None = None
) -> None:
    """Draw the run into ``path`` (PNG)."""
    with requires_extra("the demo's timeline"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.ticker import MaxNLocator

    fig, (ax, limit_ax) = plt.subplots(
        2, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    used: dict[str, int] = {}
    for c in recorder.calls:
        style = _style(c)
        used[style] = used.get(style, 0) + 1
        ax.plot([c.start, c.end], [c.index, c.index], color=STYLES[style], linewidth=2.5)
    handles: list[Any] = [
        Line2D([], [], color=STYLES[s], linewidth=2.5, label=f"call: {s} ({used[s]})")
        for s in STYLES
        if s in used
    ]

    def at_calls(name: str) -> list[tuple[float, int]]:
        return [
            (t, f["call"]) for t, n, f in recorder.events if n == name and f.get("call") is not None
        ]

    for name, marker, colour, label in (
        ("retry_scheduled", "|", "black", "retry scheduled (chaos part)"),
        ("token_invalidated", "x", "tab:cyan", "token refused (40000001)"),
        ("stream_resumed", "D", "tab:pink", "stream reconnected and resumed"),
    ):
        points = at_calls(name)
        if points:
            ax.scatter(
                [t for t, _ in points], [i for _, i in points], marker=marker, color=colour,
                s=70, zorder=3, label=f"{label} ({len(points)})",
            )  # fmt: skip
    refreshes = [
        t for t, n, f in recorder.events if n == "token_refreshed" and not f.get("initial")
    ]
    for t in refreshes:
        ax.axvline(t, color="tab:cyan", linestyle="--", alpha=0.7)
    if refreshes:
        handles.append(
            Line2D(
                [],
                [],
                color="tab:cyan",
                linestyle="--",
                label=f"token refreshed ({len(refreshes)})",
            )
        )
    if fleet:
        ax.axvspan(fleet["began"], fleet["ended"], color="0.92", zorder=0)
        handles.append(
            Line2D(
                [],
                [],
                color="0.85",
                linewidth=8,
                label=f"fleet part ({fleet['workers']} worker processes)",
            )
        )
    marker_handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + marker_handles, loc="upper center", fontsize=8)
    ax.set_ylabel("call")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("asr_resilience demo: every call over time, and what the resilience layer did")

    limits = [(t, f.get("new")) for t, n, f in recorder.events if n == "concurrency_limit_changed"]
    if limits:
        limit_ax.step(
            [t for t, _ in limits], [v for _, v in limits], where="post",
            label="chaos part: adaptive limit",
        )  # fmt: skip
    limit_ax.axhline(quota, color="tab:red", linestyle=":", label=f"chaos account quota ({quota})")
    if fleet:
        limit_ax.hlines(
            fleet["quota"], fleet["began"], fleet["ended"], color="tab:purple", linestyle="-.",
            label=f"fleet quota shared through Redis ({fleet['quota']}; peak "
            f"{fleet['max_concurrent']} connections)",
        )  # fmt: skip
    limit_ax.set_ylabel("concurrency")
    limit_ax.set_xlabel("seconds")
    limit_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    limit_ax.set_ylim(bottom=0)
    limit_ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
