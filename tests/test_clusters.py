"""Incremental clustering: founders, joins, merges through overlapping spans, links otherwise."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from narratives.clusters import ClusterIndex, Membership, Merge, assign, cluster_id_for
from narratives.params import DEFAULT_PARAMS
from narratives.verify import Match

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


def _at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def _match(other: int, span: tuple[int, int], kind: str = "passage", jaccard: float = 0.1) -> Match:
    return Match(
        other_id=other,
        kind=kind,
        jaccard=jaccard,
        containment=0.5,
        shared=60,
        run_shared=span[1] - span[0] - 2,
        span=span,
        passage=f"words {span[0]}..{span[1]}",
    )


def test_cluster_id_comes_from_the_founder():
    assert cluster_id_for(0x2A) == "N00000000002a"
    assert cluster_id_for(0x7FFF_1234_5678_9ABC) == "N123456789abc"  # low 48 bits
    assert len(cluster_id_for(2**62 + 5)) == 13


def test_unmatched_article_founds_a_cluster():
    index = ClusterIndex({}, {})
    result = assign([(501, (_at(0), 501))], {}, index, DEFAULT_PARAMS)
    cluster = cluster_id_for(501)
    assert result.new_clusters == [(cluster, 501)]
    assert result.memberships == [Membership(501, cluster, None)]
    assert result.merges == [] and result.links == []
    assert index.cluster_of(501) == cluster


def test_matching_article_joins_the_cluster_of_its_match():
    index = ClusterIndex({11: "Nold"}, {"Nold": (_at(-48), 11)})
    match = _match(11, (0, 80), kind="copy", jaccard=0.7)
    result = assign([(12, (_at(0), 12))], {12: [match]}, index, DEFAULT_PARAMS)
    assert result.new_clusters == []
    assert result.memberships == [Membership(12, "Nold", match)]
    assert index.cluster_of(12) == "Nold"


def test_matches_to_unknown_articles_are_ignored():
    index = ClusterIndex({}, {})
    result = assign([(7, (_at(0), 7))], {7: [_match(999, (0, 50))]}, index, DEFAULT_PARAMS)
    assert result.new_clusters == [(cluster_id_for(7), 7)]
    assert result.memberships[0].match is None


def test_best_match_decides_membership():
    index = ClusterIndex({1: "Na", 2: "Nb"}, {"Na": (_at(-5), 1), "Nb": (_at(-3), 2)})
    weak = _match(1, (0, 40))
    strong = _match(2, (200, 260), kind="copy", jaccard=0.4)
    result = assign([(3, (_at(0), 3))], {3: [weak, strong]}, index, DEFAULT_PARAMS)
    assert result.memberships == [Membership(3, "Nb", strong)]
    assert result.links == [(3, weak)]  # disjoint spans: a link, no merge
    assert result.merges == []
    assert index.cluster_of(1) == "Na" and index.cluster_of(2) == "Nb"


def test_overlapping_spans_merge_into_the_older_cluster():
    # "Nyoung" was born later but its founder has the smaller id: age decides, not the id
    index = ClusterIndex({1: "Nyoung", 2: "Nold"}, {"Nyoung": (_at(-1), 1), "Nold": (_at(-30), 2)})
    to_young = _match(1, (10, 70), kind="copy", jaccard=0.5)  # the stronger match
    to_old = _match(2, (30, 90))  # overlaps 41 of 61 words
    result = assign([(3, (_at(0), 3))], {3: [to_young, to_old]}, index, DEFAULT_PARAMS)
    assert result.merges == [Merge(absorbed="Nyoung", survivor="Nold", via_article_id=3)]
    assert result.memberships == [Membership(3, "Nold", to_young)]
    assert result.links == []
    assert index.cluster_of(1) == "Nold"
    assert index.cluster_of(2) == "Nold"


def test_equal_birth_times_fall_back_to_the_birth_key_then_id():
    index = ClusterIndex({1: "Nb", 2: "Na"}, {"Nb": (_at(0), 1), "Na": (_at(0), 2)})
    assert index.older("Na", "Nb") == ("Nb", "Na")  # founder 1 before founder 2
    index = ClusterIndex({}, {})
    assert index.older("Nb", "Na") == ("Na", "Nb")  # no birth keys: by id


def test_merge_within_a_batch_repoints_earlier_memberships():
    # 10 and 11 found two clusters; 12 matches both through the same text
    order = [(10, (_at(0), 10)), (11, (_at(1), 11)), (12, (_at(2), 12))]
    matches = {12: [_match(11, (0, 60), kind="copy", jaccard=0.6), _match(10, (5, 55))]}
    result = assign(order, matches, ClusterIndex({}, {}), DEFAULT_PARAMS)
    c10, c11 = cluster_id_for(10), cluster_id_for(11)
    assert result.new_clusters == [(c10, 10), (c11, 11)]
    assert result.merges == [Merge(absorbed=c11, survivor=c10, via_article_id=12)]
    assert {m.article_id: m.cluster_id for m in result.memberships} == {10: c10, 11: c10, 12: c10}


def test_three_clusters_merge_into_the_oldest():
    births = {"Nx": (_at(-2), 1), "Ny": (_at(-9), 2), "Nz": (_at(-4), 3)}
    index = ClusterIndex({1: "Nx", 2: "Ny", 3: "Nz"}, births)
    found = [_match(1, (0, 50), "copy", 0.5), _match(2, (0, 48), "copy", 0.4), _match(3, (2, 50))]
    result = assign([(4, (_at(0), 4))], {4: found}, index, DEFAULT_PARAMS)
    assert {(m.absorbed, m.survivor) for m in result.merges} == {("Nx", "Ny"), ("Nz", "Ny")}
    assert result.memberships[0].cluster_id == "Ny"
    assert {index.cluster_of(a) for a in (1, 2, 3, 4)} == {"Ny"}


def test_disjoint_spans_only_link_a_roundup_to_two_clusters():
    index = ClusterIndex(
        {1: "Nfirst", 2: "Nsecond"}, {"Nfirst": (_at(-9), 1), "Nsecond": (_at(-8), 2)}
    )
    first_claim = _match(1, (0, 40), jaccard=0.12)
    second_claim = _match(2, (300, 340), jaccard=0.1)
    result = assign([(5, (_at(0), 5))], {5: [second_claim, first_claim]}, index, DEFAULT_PARAMS)
    assert result.merges == []
    assert result.memberships == [Membership(5, "Nfirst", first_claim)]
    assert result.links == [(5, second_claim)]
    assert index.cluster_of(2) == "Nsecond"


def test_merge_needs_the_configured_share_of_overlap():
    spans = (_match(1, (0, 99), "copy", 0.5), _match(2, (60, 159)))  # overlap 40 of 100
    births = {"Na": (_at(-2), 1), "Nb": (_at(-1), 2)}
    loose = assign(
        [(3, (_at(0), 3))],
        {3: list(spans)},
        ClusterIndex({1: "Na", 2: "Nb"}, births),
        replace(DEFAULT_PARAMS, merge_overlap=0.4),
    )
    strict = assign(
        [(3, (_at(0), 3))],
        {3: list(spans)},
        ClusterIndex({1: "Na", 2: "Nb"}, births),
        DEFAULT_PARAMS,
    )
    assert len(loose.merges) == 1 and loose.links == []
    assert strict.merges == [] and len(strict.links) == 1


def test_assignment_is_deterministic():
    def run():
        order = [(a, (_at(a), a)) for a in (40, 41, 42, 43, 44)]
        matches = {
            41: [_match(40, (0, 60), "copy", 0.5)],
            43: [_match(42, (0, 50), "copy", 0.3)],
            44: [_match(41, (0, 40)), _match(43, (20, 60))],
        }
        result = assign(order, matches, ClusterIndex({}, {}), DEFAULT_PARAMS)
        return result.memberships, result.new_clusters, result.merges, result.links

    first = run()
    assert run() == first
    memberships, new_clusters, merges, _links = first
    assert [c for c, _ in new_clusters] == [cluster_id_for(40), cluster_id_for(42)]
    assert merges == [Merge(cluster_id_for(42), cluster_id_for(40), 44)]
    assert {m.cluster_id for m in memberships} == {cluster_id_for(40)}
