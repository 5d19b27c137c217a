from kit.lock_probe import LockReading, RecentReadings


def _reading(n: int, operation: str = "HoldSlots") -> LockReading:
    return LockReading(
        "availability", operation, relation_locks=n, advisory_locks=0, slow_path_locks=0, total_locks=n, wrote=True
    )


def test_readings_since_a_mark_survive_the_log_dropping_its_oldest_entries():
    log = RecentReadings(maxlen=5)
    for n in range(5):
        log.append(_reading(n))
    mark = log.mark()  # the log is full: a length taken now would be an index past the end later
    log.append(_reading(10))
    log.append(_reading(11))
    assert [r.total_locks for r in log.since(mark)] == [10, 11]
    assert log.since(log.mark()) == []
    assert len(log) == 5


def test_more_new_readings_than_the_log_holds_give_the_ones_it_kept():
    log = RecentReadings(maxlen=3)
    mark = log.mark()
    for n in range(7):
        log.append(_reading(n))
    assert [r.total_locks for r in log.since(mark)] == [4, 5, 6]


def test_per_operation_figures_count_every_reading_ever_taken():
    log = RecentReadings(maxlen=2)
    for n in (3, 9, 4, 1):
        log.append(_reading(n))
    log.append(_reading(7, "ConfirmHold"))
    figures = log.per_operation[("availability", "HoldSlots", "write")]
    assert (figures.transactions, figures.max_total, figures.max_relation) == (4, 9, 9)
    assert log.per_operation[("availability", "ConfirmHold", "write")].transactions == 1


def test_write_transactions_are_counted_by_their_relation_and_advisory_locks():
    log = RecentReadings(maxlen=2)
    for relation, advisory in ((7, 1), (7, 1), (3, 0)):
        log.append(LockReading("booking", "CreateBooking", relation, advisory, 0, relation + advisory, wrote=True))
    log.append(LockReading("booking", "GetBooking", 4, 0, 0, 4, wrote=False))  # a read: not in it
    figures = log.per_operation[("booking", "CreateBooking", "write")]
    assert dict(figures.write_locks) == {8: 2, 3: 1}
    assert not log.per_operation[("booking", "GetBooking", "read")].write_locks
