"""benchmarks/data_scaling.py's arithmetic: the log-linear fit and the extrapolated number of images."""

from __future__ import annotations

import pytest
from helpers.benchmarks import benchmark


@pytest.fixture(scope="module")
def scaling():
    with benchmark("data_scaling") as module:
        yield module


def point(scaling, images: int, acc: float):
    return scaling.Point(images, acc, None, 10, None, "run")


def test_the_fit_gives_the_gain_per_doubling_and_the_images_a_target_needs(scaling) -> None:
    points = [point(scaling, 2000, 0.90), point(scaling, 4000, 0.91), point(scaling, 16000, 0.93)]
    intercept, slope = scaling.fit_line(points)
    assert slope == pytest.approx(0.01)
    assert scaling.images_for(0.95, (intercept, slope)) == pytest.approx(64000)
    table = scaling.table(points, (intercept, slope), 0.95)
    assert "+1.00% per doubling" in table and "about 64,000 training images" in table


def test_a_line_that_does_not_rise_has_no_answer(scaling) -> None:
    line = scaling.fit_line([point(scaling, 4000, 0.92), point(scaling, 8000, 0.91)])
    assert scaling.images_for(0.95, line) is None
    with pytest.raises(SystemExit, match="two different sizes"):
        scaling.fit_line([point(scaling, 4000, 0.92), point(scaling, 4000, 0.91)])
