"""Clustering scores on examples small enough to compute by hand."""

from __future__ import annotations

import pytest

from evaluation.scores import score

TRUTH = {1: "a", 2: "a", 3: "b", 4: "b", 5: None}


def test_perfect_clustering_scores_one():
    predicted = {1: "X", 2: "X", 3: "Y", 4: "Y", 5: "Z"}
    s = score(TRUTH, predicted)
    assert s.items == 5
    assert (
        s.pairwise_precision,
        s.pairwise_recall,
        s.bcubed_precision,
        s.bcubed_recall,
        s.bcubed_f1,
        s.adjusted_rand,
    ) == (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_everything_in_one_cluster():
    s = score(TRUTH, dict.fromkeys(TRUTH, "all"))
    # predicted pairs: C(5,2) = 10; true pairs: (1,2) and (3,4)
    assert s.pairwise_precision == pytest.approx(2 / 10)
    assert s.pairwise_recall == 1.0
    # B-cubed precision per item: 2/5 for the four paired items, 1/5 for the singleton
    assert s.bcubed_precision == pytest.approx((4 * 2 / 5 + 1 / 5) / 5)  # 0.36
    assert s.bcubed_recall == 1.0
    assert s.bcubed_f1 == pytest.approx(2 * 0.36 / 1.36)
    # expected agreement 10 * 2 / 10 = 2 = observed: no better than chance
    assert s.adjusted_rand == pytest.approx(0.0)


def test_none_truth_items_are_singletons():
    truth = {1: None, 2: None, 3: None}
    assert score(truth, {1: "p", 2: "q", 3: "r"}).bcubed_precision == 1.0
    joined = score(truth, {1: "p", 2: "p", 3: "r"})
    assert joined.pairwise_precision == 0.0  # the one predicted pair is wrong
    assert joined.pairwise_recall == 1.0  # no true pairs to miss
    assert joined.bcubed_precision == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert joined.bcubed_recall == 1.0


def test_split_cluster_loses_recall_not_precision():
    predicted = {1: "X", 2: "X2", 3: "Y", 4: "Y", 5: "Z"}
    s = score(TRUTH, predicted)
    assert s.pairwise_precision == 1.0
    assert s.pairwise_recall == pytest.approx(1 / 2)
    assert s.bcubed_precision == 1.0
    assert s.bcubed_recall == pytest.approx((1 / 2 + 1 / 2 + 1 + 1 + 1) / 5)  # 0.8
    # ARI by hand: index 1, expected 1 * 2 / 10 = 0.2, max (1 + 2) / 2 = 1.5
    assert s.adjusted_rand == pytest.approx((1 - 0.2) / (1.5 - 0.2))


def test_only_items_known_to_both_are_scored():
    s = score({1: "a", 2: "a", 9: "c"}, {1: "X", 2: "X", 7: "W"})
    assert s.items == 2 and s.bcubed_f1 == 1.0
    empty = score({1: "a"}, {2: "X"})
    assert empty.items == 0 and empty.adjusted_rand == 1.0
    assert "items=2" in s.line() and "ARI=1.000" in s.line()
