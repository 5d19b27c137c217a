"""A server process freezes what exists after startup and collects the young generation less often."""

import gc

from kit.gc_tuning import YOUNG_GENERATION_THRESHOLD, tune_for_server


def test_tuning_freezes_startup_objects_and_raises_the_young_generation_threshold():
    before = gc.get_threshold()
    try:
        tune_for_server()
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
