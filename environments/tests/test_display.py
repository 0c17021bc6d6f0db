"""How values read on a page: one way to show a duration, whatever its size."""

import pytest

from environments.templatetags.display import duration


@pytest.mark.parametrize(
    ("milliseconds", "shown"),
    [
        (None, "—"),
        (0, "0 ms"),
        (240, "240 ms"),
        (999, "999 ms"),
        (1200, "1.2 s"),
        (59_940, "59.9 s"),
        (59_960, "1 min 0 s"),  # never "60.0 s"
        (329_799, "5 min 30 s"),
        (3_599_600, "1 h 0 min"),
        (7_380_000, "2 h 3 min"),
    ],
)
def test_a_duration_reads_in_the_unit_a_person_takes_in_at_a_glance(milliseconds, shown):
    assert duration(milliseconds) == shown
