"""The pull task's process settings: set inside, restored after, even when the pull fails."""

from __future__ import annotations

import gc
import sys

import pytest

from tasks.pull_process import SWITCH_INTERVAL_S, YOUNG_COLLECTION_EVERY, pull_process


def test_the_pull_process_settings_hold_inside_and_are_restored_after() -> None:
    before = gc.get_threshold(), sys.getswitchinterval()
    with pull_process():
        assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, *before[0][1:])
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    assert (gc.get_threshold(), sys.getswitchinterval()) == before


def test_a_failing_pull_restores_them_too() -> None:
    before = gc.get_threshold(), sys.getswitchinterval()
    with pytest.raises(RuntimeError), pull_process():
        raise RuntimeError("the source went away")
    assert (gc.get_threshold(), sys.getswitchinterval()) == before
