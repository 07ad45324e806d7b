"""The sharded Redis layout on fakeredis and on one real redis-server.

The whole contract suite runs on it (``ShardedRedisBrokerContract``: the tests
that pin the order of different ids on one shard, see myrq/testing/sharded.py),
then what is particular to the layout: where jobs live, the order it keeps
(within a shard), batches and priority across shards, wake-ups, reaping every
shard, and dependencies between jobs on different shards (the outbox).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from myrq import Queue, Worker
from myrq.backends import Broker, EnqueueRequest, FinishRequest, RedisBroker
from myrq.backends.redis_sharded import ShardedRedisBroker
from myrq.backends.redis_shards import ShardLayout, shard_tags
from myrq.config import get_broker
from myrq.exceptions import ConfigurationError
from myrq.testing.contract.kit import W, put, record
from myrq.testing.redis_server import RedisServer
from myrq.testing.sharded import ShardedRedisBrokerContract
from tests import jobs

DONE = {"status": b"finished"}
FAILED = {"status": b"failed", "error": b"{}"}


class TestShardedOnFakeredis(ShardedRedisBrokerContract):
    def make_sharded_broker(self, shards: int | None) -> Broker:
        return ShardedRedisBroker(fakeredis.FakeRedis(), shards=shards)


class TestShardedOnRedisServer(ShardedRedisBrokerContract):
    @pytest.fixture(autouse=True)
    def _server(self, redis_client: redis.Redis, redis_server: RedisServer) -> None:
        self.client, self.url = redis_client, redis_server.url

    def make_sharded_broker(self, shards: int | None) -> Broker:
        return ShardedRedisBroker(self.client, url=self.url, shards=shards)


@pytest.fixture
def sharded() -> Iterator[ShardedRedisBroker]:
    b = ShardedRedisBroker(fakeredis.FakeRedis())
    yield b
    b.close()


def ids_on(b: ShardedRedisBroker, shard: int, n: int, stem: str = "j") -> list[str]:
    """``n`` ids that the layout keeps on ``shard``."""
    found: list[str] = []
    i = 0
    while len(found) < n:
        if b.shard_of(f"{stem}{i}") == shard:
            found.append(f"{stem}{i}")
        i += 1
    return found


_held: dict[str, str] = {}  # job id -> token of jobs claimed along the way


def claim(b: ShardedRedisBroker, job_id: str, queue: str = "q") -> str:
    """The token of ``job_id``, claiming until it comes out (others stay held)."""
    for _ in range(100):
        if job_id in _held:
            return _held.pop(job_id)
        for d in b.dequeue([queue], W, 30, count=16):
            assert d.token is not None
            _held[d.job_id] = d.token
    raise AssertionError(f"{job_id} never came out")


@pytest.fixture(autouse=True)
def _forget_held() -> Iterator[None]:
    _held.clear()
    yield
    _held.clear()


# -- where jobs live -----------------------------------------------------------------------


def test_every_key_of_a_job_carries_its_shards_tag(sharded: ShardedRedisBroker) -> None:
    put(sharded, "a")
    shard = sharded.shard_of("a")
    tag = shard_tags(16)[shard]
    keys = {k.decode() for k in sharded.client.keys("*")}
    assert f"myrq:{{{tag}}}:job:a" in keys and f"myrq:{{{tag}}}:queue:q" in keys
    assert sharded.get("a") is not None  # found from its id alone


def test_shard_tags_fall_in_equal_slot_ranges() -> None:
    """So that a cluster whose masters own equal ranges gets count/masters shards each."""
    from redis.crc import key_slot

    for count in (1, 3, 16, 64):
        width = 16384 / count
        for k, tag in enumerate(shard_tags(count)):
            assert k * width <= key_slot(tag.encode()) < (k + 1) * width


def test_a_hash_tag_in_the_id_places_the_job() -> None:
    layout = ShardLayout("myrq:", 16)
    assert len({layout.shard_of(f"order-{n}{{customer-42}}") for n in range(50)}) == 1
    assert len({layout.shard_of(f"order-{n}") for n in range(50)}) > 8
    # a schedule's occurrences live with the schedule
    assert layout.shard_of("cron:q:nightly:1000") == layout.shard_of("cron:q:nightly:2000")


def test_the_shard_count_is_stored_once_and_another_is_refused() -> None:
    client = fakeredis.FakeRedis()
    ShardedRedisBroker(client, shards=8)
    assert client.get("myrq:shards") == b"8"
    assert ShardedRedisBroker(client).layout.count == 8  # adopted
    with pytest.raises(ConfigurationError, match="has 8 shards"):
        ShardedRedisBroker(client, shards=16)
    assert ShardedRedisBroker(client, key_prefix="other:").layout.count == 16


def test_a_prefix_with_a_hash_tag_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="hash tag"):
        ShardedRedisBroker(fakeredis.FakeRedis(), key_prefix="{myrq}:")


def test_urls_select_the_layout() -> None:
    b = get_broker("fakeredis+sharded://urls?shards=4")
    assert isinstance(b, ShardedRedisBroker) and b.layout.count == 4
    assert type(get_broker("fakeredis://urls")) is RedisBroker  # the classic layout stays
    for bad in ("redis+sharded://h:1/0?shards=0", "redis+cluster://h", "redis+cluster://h:1/3"):
        with pytest.raises(ConfigurationError):
            get_broker(bad)


# -- order, priority and batches -----------------------------------------------------------------


def test_jobs_of_one_shard_keep_their_order(sharded: ShardedRedisBroker) -> None:
    ids = [f"o{n}{{customer-7}}" for n in range(6)]
    for other in ids_on(sharded, (sharded.shard_of(ids[0]) + 1) % 16, 6, "x"):
        put(sharded, other)
    for job_id in ids:
        put(sharded, job_id)
    seen = [d.job_id for _ in range(12) for d in sharded.dequeue(["q"], W, 30)]
    assert [i for i in seen if "customer-7" in i] == ids


def test_a_batch_is_filled_from_several_shards(sharded: ShardedRedisBroker) -> None:
    ids = [f"b{n}" for n in range(10)]
    sharded.enqueue_many([EnqueueRequest("q", i, record()) for i in ids])
    assert len({sharded.shard_of(i) for i in ids}) > 3
    got = sharded.dequeue(["q"], W, 30, count=10)
    assert sorted(d.job_id for d in got) == sorted(ids) and all(d.claimed for d in got)


def test_a_higher_priority_queue_on_another_shard_is_taken_first(
    sharded: ShardedRedisBroker,
) -> None:
    home = sharded.layout.home(W)
    for low in ids_on(sharded, home, 3, "low"):
        put(sharded, low, queue="low")
    [high] = ids_on(sharded, (home + 5) % 16, 1, "high")
    put(sharded, high, queue="high")
    assert sharded.dequeue(["high", "low"], W, 30)[0].job_id == high


def test_a_worker_leaves_its_shard_after_a_while(
    sharded: ShardedRedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fairness: jobs on other shards do not wait for a busy shard to drain."""
    import myrq.backends.redis_sharded_claims as claims

    monkeypatch.setattr(claims, "STICK_FOR", 0.05)
    home = sharded.layout.home(W)
    for job_id in ids_on(sharded, home, 20, "busy"):
        put(sharded, job_id)
    [other] = ids_on(sharded, (home + 1) % 16, 1, "other")
    put(sharded, other)
    seen = []
    for _ in range(20):
        seen += [d.job_id for d in sharded.dequeue(["q"], W, 30)]
        time.sleep(0.01)
    assert other in seen


def test_queued_ids_pages_over_every_shard(sharded: ShardedRedisBroker) -> None:
    ids = [f"p{n}" for n in range(40)]
    sharded.enqueue_many([EnqueueRequest("q", i, record()) for i in ids])
    everything = sharded.queued_ids("q")
    assert sorted(everything) == sorted(ids) and sharded.queue_length("q") == 40
    pages = [sharded.queued_ids("q", n, n + 6) for n in range(0, 40, 7)]
    assert [i for page in pages for i in page] == everything
    assert sharded.queued_ids("q", -3) == everything[-3:]


# -- waiting and reaping -------------------------------------------------------------------------


def test_an_idle_worker_wakes_for_a_job_on_any_shard() -> None:
    sharded = ShardedRedisBroker(fakeredis.FakeRedis(), poll_interval=5)
    sharded.dequeue(["q"], W, 30, timeout=0.2)  # idle: it has swept and waited once
    [far] = ids_on(sharded, (sharded.layout.home(W) + 7) % 16, 1, "far")
    started = time.monotonic()
    threading.Timer(0.3, put, (sharded, far)).start()
    got = sharded.dequeue(["q"], W, 30, timeout=10)
    waited = time.monotonic() - started
    assert [d.job_id for d in got] == [far]
    assert waited < 0.3 + 1.5  # woken by the ring, not by the next sweep (5 s)


def test_a_reap_covers_every_shard(sharded: ShardedRedisBroker) -> None:
    ids = [f"r{n}" for n in range(30)]
    sharded.enqueue_many([EnqueueRequest("q", i, record()) for i in ids])
    while sharded.dequeue(["q"], W, 0.1, count=16):
        pass
    time.sleep(0.25)
    reaped = sharded.reap(max_attempts=0)
    assert sorted(r.job_id for r in reaped) == sorted(ids)
    assert len({sharded.shard_of(i) for i in ids}) > 8


def test_a_resent_claim_across_shards_hands_out_the_same_jobs(
    sharded: ShardedRedisBroker,
) -> None:
    ids = [f"c{n}" for n in range(8)]
    sharded.enqueue_many([EnqueueRequest("q", i, record()) for i in ids])
    first = sharded.dequeue(["q"], W, 30, count=8, claim_id="lost-reply")
    again = sharded.dequeue(["q"], W, 30, count=8, claim_id="lost-reply")
    assert sorted((d.job_id, d.token) for d in again) == sorted((d.job_id, d.token) for d in first)
    assert sharded.queue_length("q") == 0


# -- dependencies across shards ------------------------------------------------------------------


def _apart(b: ShardedRedisBroker, n: int) -> list[str]:
    """``n`` ids on ``n`` different shards."""
    return [ids_on(b, (3 * k) % 16, 1, f"d{k}-")[0] for k in range(n)]


def _child(b: ShardedRedisBroker, job_id: str, *parents: str, allow_failure: bool = False) -> None:
    req = EnqueueRequest("q", job_id, record(), depends_on=parents, allow_failure=allow_failure)
    assert b.enqueue_many([req]) == []


def _status(b: ShardedRedisBroker, job_id: str) -> bytes | None:
    rec = b.get(job_id)
    return None if rec is None else rec["status"]


def test_a_child_on_another_shard_runs_after_its_parent(sharded: ShardedRedisBroker) -> None:
    parent, kid = _apart(sharded, 2)
    put(sharded, parent)
    _child(sharded, kid, parent)
    assert _status(sharded, kid) == b"deferred"
    assert sharded.finish(parent, claim(sharded, parent), DONE, None)
    assert _status(sharded, kid) == b"pending" and sharded.queued_ids("q") == [kid]


def test_a_failure_cancels_down_a_chain_over_three_shards(sharded: ShardedRedisBroker) -> None:
    parent, kid, grandkid = _apart(sharded, 3)
    put(sharded, parent)
    _child(sharded, kid, parent)
    _child(sharded, grandkid, kid)
    assert sharded.finish(parent, claim(sharded, parent), FAILED, None)
    for job_id in (kid, grandkid):
        rec = sharded.get(job_id)
        assert rec is not None and rec["status"] == b"canceled"
    assert f"({parent})".encode() in (sharded.get(kid) or {})["error"]


def test_parents_on_several_shards_are_all_waited_for(sharded: ShardedRedisBroker) -> None:
    a, b, kid = _apart(sharded, 3)
    put(sharded, a)
    put(sharded, b)
    _child(sharded, kid, a, b)
    assert sharded.finish(a, claim(sharded, a), DONE, None)
    assert _status(sharded, kid) == b"deferred"
    assert sharded.finish(b, claim(sharded, b), DONE, None)
    assert _status(sharded, kid) == b"pending"


def test_a_parent_that_ended_before_the_enqueue_counts_at_once(
    sharded: ShardedRedisBroker,
) -> None:
    ok, bad, after_ok, after_bad = _apart(sharded, 4)
    for job_id, fields in ((ok, DONE), (bad, FAILED)):
        put(sharded, job_id)
        assert sharded.finish(job_id, claim(sharded, job_id), fields, None)
    _child(sharded, after_ok, ok)
    _child(sharded, after_bad, bad)
    assert _status(sharded, after_ok) == b"pending"
    assert _status(sharded, after_bad) == b"canceled"


def test_an_outcome_carried_over_before_the_childs_enqueue_is_not_lost(
    sharded: ShardedRedisBroker,
) -> None:
    """The parent ends between the attach (step 1) and the child's enqueue (step 2)."""
    parent, kid = _apart(sharded, 2)
    put(sharded, parent)
    token = claim(sharded, parent)
    real_attach = sharded._attach

    def attach_then_parent_ends(requests):  # type: ignore[no-untyped-def]
        out = real_attach(requests)
        assert sharded.finish(parent, token, DONE, None)
        sharded.carry_over(range(16))
        return out

    sharded._attach = attach_then_parent_ends  # type: ignore[method-assign]
    _child(sharded, kid, parent)
    assert _status(sharded, kid) == b"pending"


def test_an_outbox_left_by_a_dead_worker_is_carried_over_by_a_reap(
    sharded: ShardedRedisBroker,
) -> None:
    parent, kid = _apart(sharded, 2)
    put(sharded, parent)
    _child(sharded, kid, parent)
    token = claim(sharded, parent)
    view = sharded.shard_for(parent)  # the classic step alone, as if the worker died after it
    assert view.finish(parent, token, DONE, None)
    assert _status(sharded, kid) == b"deferred"
    sharded.reap(max_attempts=3)
    assert _status(sharded, kid) == b"pending"


def test_canceling_or_reaping_a_parent_cancels_a_child_elsewhere(
    sharded: ShardedRedisBroker,
) -> None:
    p1, k1, p2, k2 = _apart(sharded, 4)
    put(sharded, p1)
    _child(sharded, k1, p1)
    assert sharded.cancel(p1, 60, b"{}") == "pending"
    assert _status(sharded, k1) == b"canceled"
    put(sharded, p2)
    _child(sharded, k2, p2)
    [d] = sharded.dequeue(["q"], W, 0.1)  # alone (a batch would be reaped uncounted)
    assert d.job_id == p2
    time.sleep(0.25)
    assert [r.outcome for r in sharded.reap(max_attempts=1)] == ["failed"]
    assert _status(sharded, k2) == b"canceled"


def test_a_missing_parent_on_another_shard_is_refused(sharded: ShardedRedisBroker) -> None:
    parent, kid = _apart(sharded, 2)
    with pytest.raises(Exception, match=parent):
        _child(sharded, kid, parent)
    assert sharded.get(kid) is None


# -- on a real server: round trips and workers --------------------------------------------------------


def _evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def test_enqueue_many_sends_one_script_call_per_shard(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    b = ShardedRedisBroker(redis_client, url=redis_server.url)
    b.enqueue_many([EnqueueRequest("q", "warm", record())])  # scripts loaded
    before = _evalsha_calls(redis_client)
    ids = [f"m{n}" for n in range(200)]
    assert b.enqueue_many([EnqueueRequest("q", i, record()) for i in ids]) == []
    assert _evalsha_calls(redis_client) - before == len({b.shard_of(i) for i in ids})


def test_a_busy_worker_claims_and_finishes_in_one_script_call(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    b = ShardedRedisBroker(redis_client, url=redis_server.url)
    ids = [f"w{n}{{same}}" for n in range(20)]
    b.enqueue_many([EnqueueRequest("q", i, record()) for i in ids])
    [d] = b.dequeue(["q"], W, 30)
    before = _evalsha_calls(redis_client)
    for _ in range(10):
        done = FinishRequest(d.job_id, d.token or "", DONE, None, queue="q")
        written, [d] = b.finish_many_and_dequeue([done], queues=["q"], worker=W, lease=30)
        assert written == [True]
    assert _evalsha_calls(redis_client) - before == 10


def test_workers_drain_a_sharded_queue_by_url(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    url = redis_server.url.replace("unix://", "unix+sharded://")
    queue = Queue("default", broker=url)
    made = [queue.enqueue(jobs.add, n, 1) for n in range(60)]
    Worker(["default"], broker=url).work(burst=True)
    assert Counter(j.get_status().value for j in made) == {"finished": 60}
    assert [j.result for j in made] == [n + 1 for n in range(60)]
