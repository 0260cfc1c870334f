"""Incremental narrative clustering with stable ids.

Articles arrive in order. Each joins the cluster of the stored article it matches best; when it
matches several clusters through the *same* text (overlapping matched spans), those clusters are
one narrative found late and are merged into the oldest, and the merge is recorded. Matches to
other clusters through different passages (a commentary quoting two claims) are kept as links,
never as merges, so one roundup cannot fuse two narratives. A cluster's id comes from its
founding article, so the same input gives the same ids, run after run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from narratives.params import DetectionParams
from narratives.verify import Match, overlap


def cluster_id_for(founder_article_id: int) -> str:
    return f"N{founder_article_id & 0xFFFFFFFFFFFF:012x}"


@dataclass(frozen=True)
class Membership:
    article_id: int
    cluster_id: str
    match: Match | None  # the evidence that put it there; None for a founder


@dataclass(frozen=True)
class Merge:
    absorbed: str
    survivor: str
    via_article_id: int


@dataclass
class Assignment:
    memberships: list[Membership] = field(default_factory=list)
    new_clusters: list[tuple[str, int]] = field(default_factory=list)  # (cluster_id, founder)
    merges: list[Merge] = field(default_factory=list)
    links: list[tuple[int, Match]] = field(default_factory=list)  # verified matches kept as links


class ClusterIndex:
    """Which cluster each known article is in, and each cluster's age rank (older first).
    Built from the store for the candidate articles only, then updated as articles are added."""

    def __init__(self, membership: Mapping[int, str], birth_order: Mapping[str, tuple]):
        self._cluster_of: dict[int, str] = dict(membership)
        self._birth: dict[str, tuple] = dict(birth_order)
        self._parent: dict[str, str] = {}

    def find(self, cluster_id: str) -> str:
        root = cluster_id
        while root in self._parent:
            root = self._parent[root]
        while cluster_id != root:  # path compression
            self._parent[cluster_id], cluster_id = root, self._parent[cluster_id]
        return root

    def cluster_of(self, article_id: int) -> str | None:
        cluster = self._cluster_of.get(article_id)
        return self.find(cluster) if cluster is not None else None

    def add(self, article_id: int, cluster_id: str, birth: tuple | None = None) -> None:
        self._cluster_of[article_id] = cluster_id
        if birth is not None:
            self._birth.setdefault(cluster_id, birth)

    def older(self, a: str, b: str) -> tuple[str, str]:
        ka, kb = self._birth.get(a, (a,)), self._birth.get(b, (b,))
        return (a, b) if (ka, a) <= (kb, b) else (b, a)

    def union(self, a: str, b: str) -> tuple[str, str] | None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        survivor, absorbed = self.older(ra, rb)
        self._parent[absorbed] = survivor
        return survivor, absorbed


def assign(
    articles: Sequence[tuple[int, tuple]],
    matches: Mapping[int, Sequence[Match]],
    index: ClusterIndex,
    params: DetectionParams,
) -> Assignment:
    """Place each (article_id, birth_key) in order. `matches[article_id]` holds its verified
    matches against stored articles and earlier articles of the same batch."""
    result = Assignment()
    for article_id, birth in articles:
        found = [m for m in matches.get(article_id, ()) if index.cluster_of(m.other_id)]
        if not found:
            cluster = cluster_id_for(article_id)
            index.add(article_id, cluster, birth)
            result.new_clusters.append((cluster, article_id))
            result.memberships.append(Membership(article_id, cluster, None))
            continue
        best_by_cluster: dict[str, Match] = {}
        for match in found:
            of = index.cluster_of(match.other_id)
            assert of is not None
            if of not in best_by_cluster or match.strength > best_by_cluster[of].strength:
                best_by_cluster[of] = match
        ranked = sorted(best_by_cluster.items(), key=lambda kv: kv[1].strength, reverse=True)
        primary_cluster, primary = ranked[0]
        for cluster, match in ranked[1:]:
            if overlap(match.span, primary.span) >= params.merge_overlap:
                merged = index.union(primary_cluster, cluster)
                if merged is not None:
                    survivor, absorbed = merged
                    result.merges.append(Merge(absorbed, survivor, article_id))
                    primary_cluster = survivor
            else:
                result.links.append((article_id, match))
        final = index.find(primary_cluster)
        index.add(article_id, final)
        result.memberships.append(Membership(article_id, final, primary))
    # memberships recorded before a later merge in the same batch point at the survivor
    result.memberships = [
        Membership(m.article_id, index.find(m.cluster_id), m.match) for m in result.memberships
    ]
    return result
