"""Detection, in one place: the per-article signing step (`sign_article`: text in, shingles,
signatures and LSH keys out), verification of candidates, cluster assignment, and the pass that
runs them over the unsigned articles of a store (`detect`), through the small store interface
`DetectionStore`. The pass hands the store one `DetectionResult` per batch to write.

Nothing here imports DuckDB or Prefect: `store.db.Store` implements `DetectionStore`, and
`flows.stages` runs the pass as a stage of the cycle."""

from __future__ import annotations

import time
from collections import ChainMap, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from narratives.clusters import Assignment, ClusterIndex, assign
from narratives.params import DetectionParams
from narratives.signatures import Signed, band_keys, sign
from narratives.text import Paragraph, read_paragraphs, tokenize, without_chrome
from narratives.verify import Match, compare


def sign_text(
    text: str | Sequence[Paragraph],
    chrome: set[int],
    params: DetectionParams,
    outlet: str = "",
    minhash: bool = True,
) -> Signed:
    """Shingles and signatures of the text's content paragraphs (the outlet's `chrome`
    dropped); `text` may be given as its paragraphs, already read (`read_paragraphs`).
    `outlet` lets verification tell two texts of one outlet apart by more than the house lines
    they share before those are learned as chrome. `minhash=False` skips the signatures (a
    stored text that is only verified against)."""
    if isinstance(text, str):
        text = read_paragraphs(text, params.chrome_max_words)
    return sign(tokenize(without_chrome(text, chrome), outlet), params, minhash)


def short_paragraph_keys(paragraphs: Sequence[Paragraph]) -> set[int]:
    """Keys of the paragraphs short enough to be chrome: the only ones learned chrome can drop."""
    return {p.key for p in paragraphs if p.key is not None}


def paragraph_rows(
    article_id: int, outlet_id: str, text: str, params: DetectionParams
) -> list[dict[str, object]]:
    """The short paragraphs of an article, keyed, for learning the outlet's chrome."""
    keys = short_paragraph_keys(read_paragraphs(text, params.chrome_max_words))
    return [{"outlet_id": outlet_id, "paragraph_key": k, "article_id": article_id} for k in keys]


class SignedTexts:
    """Texts signed earlier in a cycle, kept (the `capacity` most recent) for verification, so
    that an article met again as a stored candidate is not tokenised again. An entry is used
    only while its outlet's learned chrome drops the same paragraphs from it as when it was
    signed; otherwise the caller signs the stored text afresh."""

    def __init__(self, capacity: int = 5000):
        self.capacity = capacity
        self.reused = 0  # signings handed out again
        self._items: OrderedDict[int, tuple[Signed, frozenset[int], frozenset[int]]] = OrderedDict()
        self._offered: dict[int, tuple[Signed, frozenset[int], frozenset[int]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, article_id: int, signed: Signed, short_keys: set[int], chrome: set[int]) -> None:
        """Keep `signed` (its shingles and tokens; signatures are not needed to verify), signed
        with `chrome` dropped from a text whose short paragraphs have `short_keys`."""
        lean = replace(
            signed,
            signature=_NO_SIGNATURE,
            passage_signatures=_NO_SIGNATURES,
        )
        if "shingle_set" in signed.__dict__:  # computed once, kept with it
            lean.__dict__["shingle_set"] = signed.__dict__["shingle_set"]
        keys = frozenset(short_keys)
        self._items[article_id] = (lean, keys, keys & chrome)
        self._items.move_to_end(article_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def offer(
        self, article_id: int, signed: Signed, short_keys: Iterable[int], applied: Iterable[int]
    ) -> None:
        """A new article's full signing made elsewhere (a worker), with the short paragraph
        keys of its text and the chrome keys it dropped; `take` hands it out once."""
        self._offered[article_id] = (signed, frozenset(short_keys), frozenset(applied))

    def offered_keys(self, article_id: int) -> frozenset[int] | None:
        """The short paragraph keys of an offered article's text (None: not offered)."""
        entry = self._offered.get(article_id)
        return None if entry is None else entry[1]

    def take(self, article_id: int, chrome: set[int]) -> Signed | None:
        """The offered signing of a new article if `chrome` drops the same paragraphs from
        it as the chrome it was signed with (then it equals signing it here); else None."""
        entry = self._offered.pop(article_id, None)
        if entry is None:
            return None
        signed, keys, applied = entry
        return signed if keys & chrome == applied else None

    def outlets(self, article_ids: Iterable[int]) -> dict[int, str]:
        """The outlet of each given article that is kept."""
        found = {}
        for article_id in article_ids:
            entry = self._items.get(article_id)
            if entry is not None:
                found[article_id] = entry[0].tokens.outlet
        return found

    def get(self, article_id: int, chrome: set[int]) -> Signed | None:
        """The kept signing of the article if its outlet's `chrome` still drops the same
        paragraphs from it; None otherwise."""
        entry = self._items.get(article_id)
        if entry is None:
            return None
        signed, keys, applied = entry
        if keys & chrome != applied:
            return None
        self._items.move_to_end(article_id)
        self.reused += 1
        return signed


_NO_SIGNATURE = np.empty(0, np.uint32)
_NO_SIGNATURES = np.empty((0, 0), np.uint32)


@dataclass(frozen=True)
class SignedArticle:
    """What signing one article gives: its shingles and signatures, and its LSH keys."""

    signed: Signed
    keys: np.ndarray  # distinct uint64 band keys, sorted


def sign_article(
    text: str | Sequence[Paragraph],
    chrome: set[int],
    params: DetectionParams,
    outlet: str = "",
) -> SignedArticle:
    """The per-article signing step: the text's content paragraphs (the outlet's learned
    `chrome` dropped), their shingles, MinHash signatures and LSH band keys. Pure: it reads
    nothing but its arguments, so it can run wherever the text is."""
    signed = sign_text(text, chrome, params, outlet)
    return SignedArticle(signed, band_keys(signed, params))


KEYS_SCHEMA = pa.schema([("key", pa.uint64()), ("article_id", pa.int64())])


def keys_table(ids: Sequence[int], keys: Sequence[np.ndarray]) -> pa.Table:
    """Band key rows (key, article_id) of a batch, each article's keys distinct."""
    if not ids:
        return KEYS_SCHEMA.empty_table()
    counts = [k.size for k in keys]
    return pa.table(
        {
            "key": pa.array(np.concatenate(list(keys)) if keys else [], pa.uint64()),
            "article_id": pa.array(np.repeat(np.asarray(ids, np.int64), counts), pa.int64()),
        },
        schema=KEYS_SCHEMA,
    )


@dataclass(frozen=True)
class Verified:
    matches: dict[int, list[Match]]  # new article id -> its verified matches
    pairs_checked: int


def verify_candidates(
    order: Sequence[int],
    candidates: Sequence[tuple[int, int, int]],
    signed: Mapping[int, Signed],
    params: DetectionParams,
    common: AbstractSet[int] = frozenset(),
) -> Verified:
    """Exact verification of candidate pairs. Within a batch only earlier articles count as
    matches for later ones, so the result does not depend on batch boundaries. `common`: keys
    of the lines the store sees in unrelated stories (left out of each comparison)."""
    rank = {article_id: i for i, article_id in enumerate(order)}
    matches: dict[int, list[Match]] = {}
    checked = 0
    for new_id, other_id, _hits in candidates:
        if other_id in rank and rank[other_id] >= rank[new_id]:
            continue
        if new_id not in signed or other_id not in signed:
            continue
        checked += 1
        match = compare(signed[new_id], signed[other_id], other_id, params, common)
        if match is not None:
            matches.setdefault(new_id, []).append(match)
    return Verified(matches, checked)


def cluster_batch(
    order: Sequence[tuple[int, tuple]],
    verified: Verified,
    membership: Mapping[int, str],
    births: Mapping[str, tuple],
    params: DetectionParams,
) -> Assignment:
    return assign(order, verified.matches, ClusterIndex(membership, births), params)


# ----------------------------------------------------------------------------- the pass


@dataclass(frozen=True)
class StoredText:
    """A stored article as detection reads it."""

    article_id: int
    outlet_id: str
    text: str
    first_seen_at: datetime
    published_at: datetime | None


@dataclass
class DetectOutcome:
    articles_signed: int = 0
    pairs_checked: int = 0
    clusters_new: int = 0
    clusters_joined: int = 0
    clusters_merged: int = 0

    def add(self, part: DetectOutcome) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(part, name))


class StageClock:
    """Wall seconds per named step, accumulated over calls: `lap(name)` charges the time since
    the previous lap to `name` (benchmarks pass one to `detect` to see where time goes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def restart(self) -> None:
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


PARAGRAPHS_SCHEMA = pa.schema(
    [("outlet_id", pa.string()), ("paragraph_key", pa.int64()), ("article_id", pa.int64())]
)


@dataclass(frozen=True)
class DetectionResult:
    """Everything one detection pass over a batch decided, written by the store in one
    transaction."""

    param_set_id: str
    article_ids: list[int]
    shingle_counts: list[int]
    passage_counts: list[int]
    keys: pa.Table  # KEYS_SCHEMA: the batch's LSH band keys
    paragraphs: pa.Table  # PARAGRAPHS_SCHEMA: the batch's short paragraphs (chrome learning)
    new_clusters: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)


class DetectionStore(Protocol):
    """What the detection pass needs of a store (store.db.Store is one)."""

    def ensure_params(self, param_set_id: str, params: dict[str, Any]) -> None: ...

    def articles_to_sign(self, limit: int | None = None) -> list[StoredText]: ...

    def chrome_keys(
        self,
        outlet_ids: Iterable[str],
        min_articles: int,
        pending: pa.Table | None = None,
        of_articles: Iterable[int] | None = None,
    ) -> dict[str, set[int]]: ...

    def common_paragraphs(
        self, pending: pa.Table, min_stories: int, min_outlets: int
    ) -> set[int]: ...

    def candidate_pairs(
        self, new_keys: pa.Table, max_per_article: int
    ) -> list[tuple[int, int, int]]: ...

    def texts(self, article_ids: Iterable[int]) -> dict[int, StoredText]: ...

    def memberships(self, article_ids: Iterable[int]) -> dict[int, str]: ...

    def cluster_births(self, cluster_ids: Iterable[str]) -> dict[str, tuple]: ...

    def write_detection(self, result: DetectionResult) -> None: ...


MAX_CANDIDATES_PER_ARTICLE = 200
DETECT_BATCH = 1000  # articles signed, matched and written together
VERIFY_CHUNK = 1000  # candidate pairs verified together (stored texts signed for them)


ClusteringKey = tuple[datetime, bool, datetime, int]
_NO_DATE = datetime(1970, 1, 1, tzinfo=UTC)


def clustering_key(
    first_seen_at: datetime, published_at: datetime | None, article_id: int
) -> ClusteringKey:
    """Where an article falls in the order detection sees it in (the order of
    `DetectionStore.articles_to_sign`: first_seen_at, published_at NULLS LAST, article id)."""
    return (first_seen_at, published_at is None, published_at or _NO_DATE, article_id)


def detect(
    store: DetectionStore,
    run_id: str,
    as_of: datetime,
    params: DetectionParams,
    clock: StageClock | None = None,
    *,
    full_batches_only: bool = False,
    recent: SignedTexts | None = None,
    until: ClusteringKey | None = None,
    batch_size: int = DETECT_BATCH,
) -> DetectOutcome:
    """Sign every unsigned article, find and verify candidates, place them in clusters; in
    batches of at most `batch_size` articles, oldest first, each written in its own
    transaction (memory stays flat however large the cycle; within a batch only earlier
    articles count as matches for later ones). With `full_batches_only`, a last batch of
    fewer than `batch_size` articles is left unsigned. `recent` keeps the texts signed here
    for later batches and calls that pass the same object (a stored candidate met again is
    not tokenised again), and hands out signings made elsewhere (`SignedTexts.offer`). With
    `until`, a batch reaching past that clustering key is left (the articles before it are
    not all stored yet)."""
    clock = clock or StageClock()
    recent = recent if recent is not None else SignedTexts()
    outcome = DetectOutcome()
    done: set[int] = set()
    while True:
        clock.restart()
        batch = store.articles_to_sign(limit=batch_size)
        clock.lap("load")
        if not batch or (full_batches_only and len(batch) < batch_size):
            return outcome
        last = batch[-1]
        if (
            until is not None
            and clustering_key(last.first_seen_at, last.published_at, last.article_id) > until
        ):
            return outcome  # its last article sorts after what is known to be complete
        if batch[0].article_id in done:  # its signature was not written: never loop
            raise RuntimeError(f"article {batch[0].article_id} was detected but not signed")
        done.update(item.article_id for item in batch)
        result, found = detect_batch(store, batch, run_id, as_of, params, clock, recent)
        store.write_detection(result)
        clock.lap("write")
        outcome.add(found)


def _verify_with_stored(
    ids: list[int],
    candidates: list[tuple[int, int, int]],
    signed: dict[int, Signed],
    stored: dict[int, StoredText],
    stored_chrome: dict[str, set[int]],
    params: DetectionParams,
    clock: StageClock,
    recent: SignedTexts,
    common: AbstractSet[int] = frozenset(),
) -> Verified:
    """Verify the candidates in chunks, signing each stored text (those not in `signed`: the
    batch and the texts `recent` still holds) for the first chunk that needs it and dropping
    it after the last one: memory holds the batch and one chunk's stored texts, not every
    candidate's tokens at once. Same result as one call. The texts signed here join
    `recent`."""
    last_chunk = {other: i // VERIFY_CHUNK for i, (_n, other, _h) in enumerate(candidates)}
    cache: dict[int, Signed] = {}
    matches: dict[int, list[Match]] = {}
    checked = 0
    for chunk, first in enumerate(range(0, len(candidates), VERIFY_CHUNK)):
        part = candidates[first : first + VERIFY_CHUNK]
        for _new, other, _hits in part:
            if other in cache or other in signed:
                continue
            text = stored.get(other)
            if text is None:
                continue
            chrome = stored_chrome[text.outlet_id]
            paragraphs = read_paragraphs(text.text, params.chrome_max_words)
            cache[other] = sign_text(paragraphs, chrome, params, text.outlet_id, minhash=False)
            recent.put(other, cache[other], short_paragraph_keys(paragraphs), chrome)
        clock.lap("stored")
        found = verify_candidates(ids, part, ChainMap(cache, signed), params, common)
        for new_id, new_matches in found.matches.items():
            matches.setdefault(new_id, []).extend(new_matches)
        checked += found.pairs_checked
        for other in [o for o in cache if last_chunk[o] <= chunk]:
            del cache[other]
        clock.lap("verify")
    return Verified(matches, checked)


def batch_paragraphs(
    batch: Sequence[StoredText], params: DetectionParams, recent: SignedTexts
) -> tuple[dict[int, set[int]], pa.Table]:
    """The keys of each article's short paragraphs (those a worker sent with its signing, or
    read here), and those keys as rows."""
    short_keys = {}
    for item in batch:
        known = recent.offered_keys(item.article_id)
        short_keys[item.article_id] = (
            set(known)
            if known is not None
            else short_paragraph_keys(read_paragraphs(item.text, params.chrome_max_words))
        )
    paragraphs = pa.Table.from_pylist(
        [
            {"outlet_id": item.outlet_id, "paragraph_key": key, "article_id": item.article_id}
            for item in batch
            for key in short_keys[item.article_id]
        ],
        schema=PARAGRAPHS_SCHEMA,
    )
    return short_keys, paragraphs


def detect_batch(
    store: DetectionStore,
    batch: list[StoredText],
    run_id: str,
    as_of: datetime,
    params: DetectionParams,
    clock: StageClock,
    recent: SignedTexts,
) -> tuple[DetectionResult, DetectOutcome]:
    """Sign a batch, find and verify its candidates, and place it in clusters: what to write,
    and the counts. Reads the store; writes nothing."""
    store.ensure_params(params.param_set_id, params.as_dict())
    short_keys, paragraphs = batch_paragraphs(batch, params, recent)
    chrome = store.chrome_keys(
        {item.outlet_id for item in batch},
        params.chrome_min_articles,
        pending=paragraphs,
        of_articles=[item.article_id for item in batch],
    )
    # the batch's short paragraphs that unrelated stories of several outlets carry
    common = store.common_paragraphs(
        paragraphs, params.common_min_stories, params.common_min_outlets
    )
    clock.lap("chrome")
    ids = [item.article_id for item in batch]
    signed_articles = {}
    for item in batch:
        offered = recent.take(item.article_id, chrome[item.outlet_id])  # signed by a worker
        signed_articles[item.article_id] = (
            SignedArticle(offered, band_keys(offered, params))
            if offered is not None
            else sign_article(item.text, chrome[item.outlet_id], params, item.outlet_id)
        )
    signed = {article: s.signed for article, s in signed_articles.items()}
    clock.lap("sign")
    keys = keys_table(ids, [signed_articles[i].keys for i in ids])
    clock.lap("bands")
    candidates = store.candidate_pairs(keys, MAX_CANDIDATES_PER_ARTICLE)
    for item in batch:
        article = item.article_id
        recent.put(article, signed[article], short_keys[article], chrome[item.outlet_id])
    clock.lap("candidates")
    others = {other for _new, other, _h in candidates if other not in signed}
    kept_outlets = recent.outlets(others)  # texts signed earlier: no need to load them
    stored = store.texts(others - kept_outlets.keys())
    outlets = {t.outlet_id for t in stored.values()} | set(kept_outlets.values())
    stored_chrome = store.chrome_keys(
        outlets, params.chrome_min_articles, pending=paragraphs, of_articles=others
    )
    kept = {}
    for other, outlet in kept_outlets.items():
        if (hit := recent.get(other, stored_chrome[outlet])) is not None:
            kept[other] = hit
    # the others' outlets have learned new chrome since they were signed: sign them again
    stored.update(store.texts(kept_outlets.keys() - kept.keys()))
    clock.lap("stored")
    verified = _verify_with_stored(
        ids, candidates, {**kept, **signed}, stored, stored_chrome, params, clock, recent, common
    )
    other_ids = {m.other_id for ms in verified.matches.values() for m in ms}
    membership = store.memberships(other_ids)
    births = store.cluster_births(set(membership.values()))
    order = [(item.article_id, (item.first_seen_at, item.article_id)) for item in batch]
    assignment = cluster_batch(order, verified, membership, births, params)
    seen_at = {item.article_id: item.first_seen_at for item in batch}
    result = DetectionResult(
        param_set_id=params.param_set_id,
        article_ids=ids,
        shingle_counts=[int(signed[i].shingles.size) for i in ids],
        passage_counts=[len(signed[i].passages) for i in ids],
        keys=keys,
        paragraphs=paragraphs,
        new_clusters=[
            {
                "cluster_id": cluster,
                "founder_article_id": founder,
                "created_at": seen_at[founder],
                "status": "active",
                "merged_into": None,
                "run_id": run_id,
            }
            for cluster, founder in dict(assignment.new_clusters).items()
        ],
        members=[
            {
                "article_id": row.article_id,
                "cluster_id": row.cluster_id,
                "matched_article_id": row.match.other_id if row.match else None,
                "match_kind": row.match.kind if row.match else None,
                "similarity": row.match.jaccard if row.match else None,
                "containment": row.match.containment if row.match else None,
                "matched_passage": row.match.passage[:2000] if row.match else None,
                "joined_at": seen_at[row.article_id],
                "run_id": run_id,
            }
            for row in assignment.memberships
        ],
        matches=[
            {
                "article_id": article_id,
                "other_article_id": m.other_id,
                "match_kind": m.kind,
                "similarity": m.jaccard,
                "containment": m.containment,
                "shared_shingles": m.shared,
                "run_shingles": m.run_shared,
                "matched_passage": m.passage[:2000],
            }
            for article_id, found in verified.matches.items()
            for m in found
        ],
        merges=[
            {
                "absorbed_cluster_id": mg.absorbed,
                "survivor_cluster_id": mg.survivor,
                "via_article_id": mg.via_article_id,
                "merged_at": as_of,
                "run_id": run_id,
            }
            for mg in assignment.merges
        ],
    )
    clock.lap("cluster")
    outcome = DetectOutcome(
        articles_signed=len(ids),
        pairs_checked=verified.pairs_checked,
        clusters_new=len(result.new_clusters),
        clusters_joined=sum(1 for m in assignment.memberships if m.match is not None),
        clusters_merged=len(result.merges),
    )
    return result, outcome


# ----------------------------------------------------------------------------- reprocessing


class ResignStore(Protocol):
    """What re-signing needs of a store (store.db.Store is one)."""

    def ensure_params(self, param_set_id: str, params: dict[str, Any]) -> None: ...

    def count_to_resign(self, param_set_id: str) -> int: ...

    def articles_to_resign(self, param_set_id: str, limit: int) -> list[StoredText]: ...

    def chrome_keys(
        self,
        outlet_ids: Iterable[str],
        min_articles: int,
        pending: pa.Table | None = None,
        of_articles: Iterable[int] | None = None,
    ) -> dict[str, set[int]]: ...

    def replace_signing(self, result: DetectionResult) -> None: ...


def resign(
    store: ResignStore,
    params: DetectionParams,
    batch_size: int = DETECT_BATCH,
    progress: Any = None,
) -> int:
    """Sign again, from its stored text, every article signed with other parameters, and
    replace its LSH keys and signature row; clusters, members and matches stay as they are (so
    every cluster id survives). In batches, each written in one transaction: stopped, it
    carries on where it was; run again, it finds nothing to do. `progress(done, total)` is
    called after each batch. Returns the number of articles signed again."""
    store.ensure_params(params.param_set_id, params.as_dict())
    total = store.count_to_resign(params.param_set_id)
    done = 0
    while batch := store.articles_to_resign(params.param_set_id, batch_size):
        chrome = store.chrome_keys(
            {item.outlet_id for item in batch},
            params.chrome_min_articles,
            of_articles=[item.article_id for item in batch],
        )
        ids = [item.article_id for item in batch]
        signed = [
            sign_article(item.text, chrome[item.outlet_id], params, item.outlet_id)
            for item in batch
        ]
        store.replace_signing(
            DetectionResult(
                param_set_id=params.param_set_id,
                article_ids=ids,
                shingle_counts=[int(s.signed.shingles.size) for s in signed],
                passage_counts=[len(s.signed.passages) for s in signed],
                keys=keys_table(ids, [s.keys for s in signed]),
                paragraphs=PARAGRAPHS_SCHEMA.empty_table(),
            )
        )
        done += len(batch)
        if progress is not None:
            progress(done, total)
    return done
