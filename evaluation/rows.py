"""Article rows for storing evaluation texts directly (no feed, no page): the columns of the
`articles` table, the id derived from the URL as the pipeline derives it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flows.stages import article_id_for
from narratives.text import fingerprint


def article_row(
    url: str,
    outlet_id: str,
    first_seen_at: datetime,
    text: str,
    title: str = "",
    run_id: str = "evaluation",
    published_at: datetime | None = None,
) -> dict[str, Any]:
    """An `articles` row for `text` at `url`, first seen at `first_seen_at` (published half an
    hour before unless given)."""
    words, content_hash = fingerprint(text)
    return {
        "article_id": article_id_for(url),
        "canonical_url": url,
        "url": url,
        "outlet_id": outlet_id,
        "feed_url": f"https://{outlet_id}.example/rss",
        "title": title,
        "author": "",
        "sitename": "",
        "language": "",
        "published_at": published_at or first_seen_at - timedelta(minutes=30),
        "first_seen_at": first_seen_at,
        "text": text,
        "text_source": "page",
        "content_hash": content_hash,
        "word_count": words,
        "run_id": run_id,
    }
