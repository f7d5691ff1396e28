"""Metrics noise cannot meet, and the known-cause threshold calibrated on a dev half."""

from __future__ import annotations

from evals.calibration import (
    MatchRow,
    calibrate_threshold,
    calibration_bins,
    is_confident_wrong,
    is_useful,
    operating_point,
    split_of,
)


def test_useful_and_confident_wrong() -> None:
    assert is_useful(False, 0.5) and not is_useful(True, 1.0) and not is_useful(False, 0.49)
    assert is_confident_wrong(False, 0.0) and not is_confident_wrong(True, 0.0) and not is_confident_wrong(False, 0.1)


def test_split_is_stable_and_covers_both_halves() -> None:
    ids = [f"case-{i}" for i in range(200)]
    halves = [split_of(i) for i in ids]
    assert halves == [split_of(i) for i in ids]
    assert 60 < halves.count("dev") < 140


def test_bins_count_answered_cases_and_their_useful_share() -> None:
    bins = calibration_bins([(0.55, True), (0.6, False), (0.9, True), (1.0, True)])
    assert bins == [{"bin": "0.50-0.70", "n": 2, "useful": 0.5}, {"bin": "0.85-1.00", "n": 2, "useful": 1.0}]


def _rows() -> list[MatchRow]:
    rows: list[MatchRow] = []
    for i in range(400):
        score = (i % 100) / 100
        # A match above 0.6 states the answer; below it, it states nothing.
        rows.append(MatchRow(f"c{i}", False, True, score, 1.0 if score >= 0.6 else 0.0))
    rows.append(MatchRow("control", True, False, 0.95, None))  # routine events: never answered
    rows.append(MatchRow("loud-control", True, True, 0.55, None))  # shows a failure word, scores 0.55
    return rows


def test_calibration_stops_before_wrong_answers_and_reports_the_held_out_half() -> None:
    result = calibrate_threshold(_rows())
    assert result is not None
    dev, test = result
    assert 0.56 <= dev.threshold <= 0.6  # everything from 0.6 up is right; 0.55 would answer a control
    assert dev.confident_wrong_rate <= 0.05 and dev.controls_answered == 0
    assert test.threshold == dev.threshold and test.cases + dev.cases == 402
    assert abs(test.useful_rate - 0.4) < 0.06  # 40 % of issue cases score 0.6 or more
    assert operating_point(_rows(), 0.5).controls_answered == 1
