"""The group ledger (actors/ledger.py): what each actor was sent and answered, what each group is owed."""

from __future__ import annotations

from actors.layout import PoolLayout
from actors.ledger import GroupLedger


def started(layout: PoolLayout) -> GroupLedger:
    """A ledger whose actors all started and said hello."""
    ledger = GroupLedger(layout)
    for k in range(layout.num_actors):
        ledger.started(k)
        ledger.answered(k)
    assert ledger.owing(None) is None
    return ledger


def test_a_started_actor_owes_its_hello_to_every_group() -> None:
    ledger = GroupLedger(PoolLayout.plan(8, 2, 4, split=False))  # two groups of one whole actor
    ledger.started(0)
    ledger.started(1)
    assert ledger.owing(None) == 0
    assert ledger.owing(1) == 1
    ledger.answered(1)
    assert ledger.owing(1) is None
    assert ledger.owing(0) == 0
    ledger.answered(0)
    assert ledger.owing(None) is None


def test_a_group_waits_only_for_its_own_actors_answers() -> None:
    ledger = started(PoolLayout.plan(8, 2, 4, split=False))  # group g is actor g
    for k in (0, 1):
        ledger.signalled(k)
    ledger.group_sent(0, 0.0, ready=False)
    ledger.group_sent(1, 0.0, ready=False)
    assert ledger.owing(0) == 0 and ledger.owing(1) == 1
    ledger.answered(1)
    assert ledger.owing(1) is None and ledger.owing(0) == 0  # actor 1's answer frees group 1 only
    ledger.signalled(1)  # a second command to actor 1, not yet for any group
    assert ledger.owing(1) is None and ledger.owing(None) == 0


def test_answers_count_in_order_across_groups_of_split_actors() -> None:
    ledger = started(PoolLayout.plan(8, 2, 4, split=True))  # each actor has a part of both groups
    for g in (0, 1):
        for k in (0, 1):
            ledger.signalled(k)
        ledger.group_sent(g, 0.0, ready=False)
    ledger.answered(0)
    ledger.answered(1)
    assert ledger.owing(0) is None and ledger.owing(1) == 0  # first answers go to the first group sent
    ledger.answered(0, 1)
    assert ledger.owing(1) == 1


def test_the_actor_that_answered_last_is_waited_on_first() -> None:
    ledger = started(PoolLayout.plan(12, 3, 6, split=True))  # 2 groups, each with a part of every actor
    for k in range(3):
        ledger.signalled(k)
    ledger.group_sent(0, 0.0, ready=False)
    assert ledger.owing(0) == 0
    ledger.slowest(2)
    assert ledger.order == [2, 0, 1]
    assert ledger.owing(0) == 2
    ledger.answered(2)
    assert ledger.owing(0) == 0


def test_ready_order_takes_the_oldest_answered_group_and_times_out_the_oldest_owed() -> None:
    ledger = started(PoolLayout.plan(8, 2, 2, local=True))  # 4 groups, each one part of one actor
    assert [m.actor for (m,) in ledger.layout.groups] == [0, 1, 0, 1]
    for k in (0, 1):
        ledger.signalled(k)
    ledger.reset_sent(now=100.0)
    assert ledger.flight == [0, 1, 2, 3] and ledger.take_ready() is None
    ledger.answered(1)  # actor 1's reset answer: groups 1 and 3 are ready, 1 is older
    assert ledger.take_ready() == 1 and ledger.flight == [0, 2, 3]
    assert ledger.overdue(now=105.0, timeout=10.0) is None
    assert ledger.overdue(now=111.0, timeout=10.0) == 0  # group 0 has waited on actor 0 too long
    ledger.restart_clock(0, now=111.0)  # actor 0 restarted: its groups wait from now
    assert ledger.overdue(now=115.0, timeout=10.0) is None
    ledger.signalled(1)
    ledger.group_sent(1, now=112.0, ready=True)
    assert ledger.flight == [0, 2, 3, 1]
    assert ledger.take_ready() == 3


def test_a_restart_resets_the_actors_counts_and_what_every_group_needs_of_it() -> None:
    ledger = started(PoolLayout.plan(8, 2, 4, split=True))
    for _ in range(5):
        ledger.signalled(0)
        ledger.answered(0)
    ledger.group_sent(0, 0.0, ready=False)
    ledger.signalled(0)
    ledger.group_sent(1, 0.0, ready=False)
    ledger.started(0)
    assert (ledger.sent[0], ledger.got[0]) == (1, 0)
    assert [need[0] for need in ledger.need] == [1, 1]
    assert ledger.owing(0) == 0
    ledger.answered(0)  # the hello answers everything the old generation owed
    assert ledger.owing(0) is None and ledger.owing(1) is None
