"""The state of a narrative on a report's day (pure).

On day D (UTC), from the copies first seen before the end of D, the first rule that holds:

- resurfaced: copies first seen on D, and none in the `quiet_days` days before D (D-q .. D-1),
  though older ones exist: it is back after a quiet spell.
- new: copies first seen on D, and before D it had reached at most one outlet: D is the first
  day it spread across outlets (a narrative founded on D counts here).
- growing: copies first seen on D reach at least one outlet it had not reached before D.
- steady: copies first seen on D, all from outlets it had reached before D.
- cooling: no copy first seen on D (its latest copy is older; a report lists it while that
  copy is inside the report's window).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

DEFAULT_QUIET_DAYS = 7


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def narrative_state(
    copies: Iterable[tuple[datetime, str]], day: date, quiet_days: int = DEFAULT_QUIET_DAYS
) -> str:
    """`copies`: (first_seen_at, outlet) of every copy known by the end of `day`."""
    if quiet_days < 1:
        raise ValueError(f"the quiet spell must be at least one day, got {quiet_days}")
    start, end = day_bounds(day)
    copies = list(copies)
    before = [(seen, outlet) for seen, outlet in copies if seen < start]
    today = [(seen, outlet) for seen, outlet in copies if start <= seen < end]
    if not today:
        return "cooling"
    if before and max(seen for seen, _ in before) < start - timedelta(days=quiet_days):
        return "resurfaced"
    reached = {outlet for _, outlet in before}
    if len(reached) <= 1:
        return "new"
    if any(outlet not in reached for _, outlet in today):
        return "growing"
    return "steady"
