"""The package's front door."""

import pytest

from igan_utils import stats


def test_the_front_door_exports_what_a_user_needs():
    import igan_utils

    for name in igan_utils.__all__:
        assert callable(getattr(igan_utils, name)), name
    assert igan_utils.compare_pools is stats.compare_pools
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        igan_utils.nope
