"""Times as the console shows them: relative words, the exact UTC time in a title.

static/console/console.js refreshes the same words in the browser (elements with
data-relative), so rows that do not change do not go stale.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

_UNITS = (
    (86400 * 365, "year"),
    (86400 * 30, "month"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
)


def relative(moment: datetime, now: datetime | None = None) -> str:
    """ "just now", "5 minutes ago", "in 3 days"."""
    now = now or timezone.now()
    seconds = int((now - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 10:
        return "just now" if not future else "in a few seconds"
    amount, unit = seconds, "second"
    for size, name in _UNITS:
        if seconds >= size:
            amount, unit = seconds // size, name
            break
    words = f"{amount} {unit}{'' if amount == 1 else 's'}"
    return f"in {words}" if future else f"{words} ago"


def exact_utc(moment: datetime) -> str:
    """ "2025-01-31 12:00:00.123 UTC"."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d} UTC"
