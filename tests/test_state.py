"""State stores: SQLite and DynamoDB (on the moto server) pass one contract suite."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scaler.aws import Clients
from scaler.control import (
    AuditRecord,
    DynamoStateStore,
    Observation,
    SqliteStateStore,
    StateStore,
    create_table,
    open_store,
)
from scaler.control.settings import StateSettings
from scaler.errors import AwsCallError, InputError, RetryableAwsError
from tests.aws_faults import FAULTS, inject_fault
from tests.helpers import FAST_RETRY

NOW = datetime(2026, 3, 1, 12, 0, 30, 123456, tzinfo=UTC)
TTL = timedelta(seconds=60)
TABLE = "scaler-state"

StoreFactory = Callable[[], StateStore]


@pytest.fixture(params=["sqlite", "dynamodb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of stores sharing one backing state (a file or a table), like separate runs."""
    made: list[StateStore] = []
    if request.param == "sqlite":

        def factory() -> StateStore:
            made.append(SqliteStateStore(tmp_path / "state" / "state.db"))
            return made[-1]

    else:
        clients: Clients = request.getfixturevalue("clients")
        create_table(clients.dynamodb, TABLE)

        def factory() -> StateStore:
            made.append(DynamoStateStore(clients.dynamodb, TABLE, retry=FAST_RETRY))
            return made[-1]

    yield factory
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> StateStore:
    """One store."""
    return make_store()


def record(tick: str, phase: str = "outcome", at: datetime = NOW, **extra: object) -> AuditRecord:
    """An audit record for group 'workers'."""
    return AuditRecord.model_validate(
        {
            "tick_id": tick,
            "group": "workers",
            "at": at,
            "mode": "apply",
            "phase": phase,
            "result": "applied" if phase == "outcome" else None,
            **extra,
        }
    )


def test_both_stores_satisfy_the_protocol(store: StateStore) -> None:
    """Each implementation is a StateStore."""
    assert isinstance(store, StateStore)


def test_empty_history(store: StateStore) -> None:
    """A group never seen has no observations and no last action."""
    history = store.history("workers", since=NOW - timedelta(minutes=5))
    assert history.observations == ()
    assert history.last_action_at is None
    assert history.last_target is None


def test_history_returns_the_window_and_the_one_before(store: StateStore) -> None:
    """Observations since the start plus the newest one before it, oldest first, exact times."""
    times = [NOW - timedelta(minutes=m) for m in (9, 7, 3, 1)]
    for i, at in enumerate(times):
        store.record_observation("workers", Observation(at=at, proposal=i, data_complete=i != 2))
    store.record_observation("other", Observation(at=NOW, proposal=99, data_complete=True))
    history = store.history("workers", since=NOW - timedelta(minutes=5))
    assert [o.at for o in history.observations] == times[1:]
    assert [o.proposal for o in history.observations] == [1, 2, 3]
    assert [o.data_complete for o in history.observations] == [True, False, True]


def test_missing_proposal_survives_a_round_trip(store: StateStore) -> None:
    """A tick with no proposal is stored as None, never as zero."""
    store.record_observation("workers", Observation(at=NOW, proposal=None, data_complete=False))
    (obs,) = store.history("workers", since=NOW).observations
    assert obs.proposal is None
    assert obs.data_complete is False


def test_rerun_of_a_tick_replaces_its_observation(store: StateStore) -> None:
    """Recording the same time twice keeps one observation, the newer value."""
    store.record_observation("workers", Observation(at=NOW, proposal=3, data_complete=True))
    store.record_observation("workers", Observation(at=NOW, proposal=5, data_complete=True))
    assert [o.proposal for o in store.history("workers", since=NOW).observations] == [5]


def test_last_action_never_moves_back(store: StateStore) -> None:
    """An older action recorded late (a reconciled crash) does not hide a newer one."""
    store.record_action("workers", at=NOW, target=7)
    store.record_action("workers", at=NOW - timedelta(minutes=3), target=4)
    history = store.history("workers", since=NOW)
    assert (history.last_action_at, history.last_target) == (NOW, 7)
    store.record_action("workers", at=NOW + timedelta(minutes=1), target=9)
    assert store.history("workers", since=NOW).last_target == 9


def test_audit_records_round_trip_in_time_order(store: StateStore) -> None:
    """Records come back whole, oldest first, filtered by time, tick and limit."""
    first = record("t1", "intent", NOW, target=5, evidence={"backlog": 12.5}, rails=["max_step"])
    second = record("t1", "outcome", NOW + timedelta(seconds=1), target=5)
    third = record("t2", "outcome", NOW + timedelta(minutes=1), result="held")
    for r in (third, first, second):
        assert store.append_audit(r)
    assert store.audit("workers") == [first, second, third]
    assert store.audit("workers", since=NOW + timedelta(seconds=1)) == [second, third]
    assert store.audit("workers", tick_id="t1") == [first, second]
    assert store.audit("workers", limit=2) == [second, third]
    assert store.audit("other") == []


def test_audit_refuses_a_second_record_of_the_same_phase(store: StateStore) -> None:
    """(tick, group, phase) is written once: the second intent of one tick is refused."""
    assert store.append_audit(record("t1", "intent", target=5))
    assert not store.append_audit(record("t1", "intent", target=6))
    assert [r.target for r in store.audit("workers")] == [5]


def test_open_intents_are_those_without_an_outcome(store: StateStore) -> None:
    """An intent stays open until its outcome is written."""
    store.append_audit(record("t1", "intent", target=5))
    store.append_audit(record("t2", "intent", NOW + timedelta(minutes=1), target=6))
    store.append_audit(record("t1", "outcome", NOW + timedelta(seconds=2), target=5))
    assert [r.tick_id for r in store.open_intents("workers")] == ["t2"]
    assert store.open_intents("other") == []


def test_lease_is_exclusive_until_released(make_store: StoreFactory) -> None:
    """A second owner cannot take a held lease; after release it can."""
    a, b = make_store(), make_store()
    assert a.acquire_lease("workers", "a", now=NOW, ttl=TTL)
    assert not b.acquire_lease("workers", "b", now=NOW, ttl=TTL)
    assert b.acquire_lease("other", "b", now=NOW, ttl=TTL), "leases are per group"
    b.release_lease("workers", "b")  # not the holder: no effect
    assert not b.acquire_lease("workers", "b", now=NOW + timedelta(seconds=1), ttl=TTL)
    a.release_lease("workers", "a")
    assert b.acquire_lease("workers", "b", now=NOW + timedelta(seconds=2), ttl=TTL)


def test_lease_renews_for_its_holder(store: StateStore) -> None:
    """The holder may take its lease again (a long tick renewing)."""
    assert store.acquire_lease("workers", "a", now=NOW, ttl=TTL)
    assert store.acquire_lease("workers", "a", now=NOW + timedelta(seconds=30), ttl=TTL)


def test_lease_expires_when_its_holder_dies(make_store: StoreFactory) -> None:
    """A lease never released frees itself after its ttl."""
    a, b = make_store(), make_store()
    assert a.acquire_lease("workers", "dead", now=NOW, ttl=TTL)
    assert not b.acquire_lease("workers", "b", now=NOW + TTL - timedelta(seconds=1), ttl=TTL)
    assert b.acquire_lease("workers", "b", now=NOW + TTL, ttl=TTL)
    assert not a.acquire_lease("workers", "dead", now=NOW + TTL, ttl=TTL)


def test_lease_context_releases_and_reports(make_store: StoreFactory) -> None:
    """lease() yields whether it is held and releases on exit, even on error."""
    a, b = make_store(), make_store()
    with a.lease("workers", "a", now=NOW, ttl=TTL) as held_a:
        assert held_a
        with b.lease("workers", "b", now=NOW, ttl=TTL) as held_b:
            assert not held_b

    def failing_tick() -> None:
        with b.lease("workers", "b", now=NOW, ttl=TTL) as held:
            assert held
            raise RuntimeError("tick failed")

    with pytest.raises(RuntimeError):
        failing_tick()
    assert a.acquire_lease("workers", "a", now=NOW, ttl=TTL)


def test_overlapping_ticks_one_holds_the_lease(make_store: StoreFactory) -> None:
    """Two ticks racing for one group (two threads, two stores): exactly one gets the lease."""
    stores = [make_store(), make_store()]
    start, done = threading.Barrier(2), threading.Barrier(2)
    held: dict[str, bool] = {}

    def tick(owner: str, store: StateStore) -> None:
        start.wait()
        with store.lease("workers", owner, now=NOW, ttl=TTL) as got:
            held[owner] = got is not None
            done.wait()  # keep holding until the other has tried

    threads = [threading.Thread(target=tick, args=(f"tick-{i}", s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(held.values()) == [False, True]


def test_sqlite_prunes_old_observations(tmp_path: Path) -> None:
    """Observations older than a day are dropped when a new one is recorded."""
    store = SqliteStateStore(tmp_path / "s.db")
    old = Observation(at=NOW - timedelta(days=2), proposal=1, data_complete=True)
    store.record_observation("workers", old)
    store.record_observation("workers", Observation(at=NOW, proposal=2, data_complete=True))
    history = store.history("workers", since=NOW)
    assert [o.proposal for o in history.observations] == [2]


def test_sqlite_bad_path_names_the_file_and_the_setting(tmp_path: Path) -> None:
    """A state path that cannot be opened is an InputError naming it and SCALER_STATE."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(InputError, match=r"file/state\.db.*SCALER_STATE"):
        SqliteStateStore(blocker / "state.db")


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(
    ("operation", "use"),
    [
        ("Query", lambda s: s.history("workers", since=NOW)),
        ("GetItem", lambda s: s.history("workers", since=NOW)),
        ("PutItem", lambda s: s.acquire_lease("workers", "a", now=NOW, ttl=TTL)),
        ("TransactWriteItems", lambda s: s.append_audit(record("t1"))),
        ("DeleteItem", lambda s: s.release_lease("workers", "a")),
    ],
)
def test_dynamo_faults_become_scaler_errors(
    clients: Clients, operation: str, use: Callable[[StateStore], object], fault: str
) -> None:
    """Each DynamoDB call under each fault raises a scaler error naming it, retryable unless 4xx."""
    create_table(clients.dynamodb, TABLE)
    store = DynamoStateStore(clients.dynamodb, TABLE, retry=FAST_RETRY)
    inject_fault(clients.dynamodb, operation, fault)
    with pytest.raises(AwsCallError, match=f"^{operation}: ") as caught:
        use(store)
    assert isinstance(caught.value, RetryableAwsError) is (fault != "access_denied")


def test_create_table_twice_is_harmless(clients: Clients) -> None:
    """Setup may run on every cold start."""
    create_table(clients.dynamodb, TABLE)
    create_table(clients.dynamodb, TABLE)
    assert TABLE in clients.dynamodb.list_tables()["TableNames"]


def test_open_store_prefers_scaler_state_path(tmp_path: Path) -> None:
    """SCALER_STATE overrides the policy's path."""
    env = {"SCALER_STATE": str(tmp_path / "env.db")}
    store = open_store(StateSettings(path=str(tmp_path / "policy.db")), environ=env)
    assert isinstance(store, SqliteStateStore)
    assert store.path == tmp_path / "env.db"


def test_open_store_uses_the_policy_path_then_the_default(tmp_path: Path) -> None:
    """Without SCALER_STATE the policy path wins; without both, XDG_STATE_HOME/scaler/state.db."""
    by_policy = open_store(StateSettings(path=str(tmp_path / "p.db")), environ={})
    by_default = open_store(StateSettings(), environ={"XDG_STATE_HOME": str(tmp_path)})
    assert isinstance(by_policy, SqliteStateStore)
    assert isinstance(by_default, SqliteStateStore)
    assert by_policy.path == tmp_path / "p.db"
    assert by_default.path == tmp_path / "scaler" / "state.db"


def test_open_store_dynamodb_from_env_or_policy(clients: Clients) -> None:
    """dynamodb://TABLE in SCALER_STATE, or state.dynamodb_table, selects DynamoDB."""
    env_store = open_store(
        StateSettings(), environ={"SCALER_STATE": "dynamodb://t1"}, dynamodb=clients.dynamodb
    )
    policy_store = open_store(
        StateSettings(dynamodb_table="t2"), environ={}, dynamodb=clients.dynamodb
    )
    assert isinstance(env_store, DynamoStateStore)
    assert isinstance(policy_store, DynamoStateStore)
    assert (env_store.table, policy_store.table) == ("t1", "t2")


@pytest.mark.parametrize("value", ["dynamodb://", None])
def test_open_store_dynamodb_errors(value: str | None) -> None:
    """A table-less URL or a table without a client is an InputError."""
    env = {"SCALER_STATE": value} if value else {}
    settings = StateSettings() if value else StateSettings(dynamodb_table="t")
    with pytest.raises(InputError, match="table"):
        open_store(settings, environ=env)


def test_state_settings_refuse_two_backends() -> None:
    """A policy cannot name both a file and a table."""
    with pytest.raises(ValueError, match="not both"):
        StateSettings(path="x.db", dynamodb_table="t")
