"""Fleet URLs: ``redis+cluster://`` and ``redis+sentinel://`` parsed, malformed ones refused with
one line that never repeats the password; component keys that could not share a cluster slot
refused when built."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr_resilience._redis_url import RedisTarget, RedisUrlError, parse_redis_url
from asr_resilience.policy import check_policy, load_policy

from . import fleet_support as fs


def test_cluster_url_lists_its_startup_nodes() -> None:
    """Hosts (IPv6 in brackets), default port 6379, credentials decoded, TLS from the scheme."""
    target = parse_redis_url("rediss+cluster://app:p%40ss@10.0.0.1:7000,[::1]:7001,node-3")
    assert target.kind == "cluster"
    assert target.nodes == (("10.0.0.1", 7000), ("::1", 7001), ("node-3", 6379))
    assert (target.username, target.password, target.tls) == ("app", "p@ss", True)
    assert target.label == "cluster:10.0.0.1:7000,::1:7001,node-3:6379"
    assert "p@ss" not in repr(target)
    assert parse_redis_url("redis+cluster://h:1/0").nodes == (("h", 1),)


def test_sentinel_url_names_the_service_and_database() -> None:
    """Sentinels default to port 26379; the sentinels' own credentials are query options."""
    target = parse_redis_url(
        "redis+sentinel://:secret@s1,s2:26380/mymaster/2"
        "?sentinel_username=watch&sentinel_password=s3cret"
    )
    assert target == RedisTarget(
        "sentinel",
        nodes=(("s1", 26379), ("s2", 26380)),
        service="mymaster",
        db=2,
        password="secret",
        sentinel_username="watch",
        sentinel_password="s3cret",
    )
    assert target.label == "sentinel:s1:26379,s2:26380/mymaster/2"
    assert parse_redis_url("redis+sentinel://s1/mymaster/").db == 0


def test_standalone_urls_are_left_to_redis_py() -> None:
    """redis://, rediss:// and unix:// pass through unparsed (redis-py reads them)."""
    for url in ("redis://:pw@h:1/2", "rediss://h", "unix:///run/redis.sock"):
        assert parse_redis_url(url) == RedisTarget("standalone", url=url)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://:hunter2@h", "starts with one of redis://"),
        ("redis+cluster://:hunter2@", "node 1 of the redis+cluster URL is empty"),
        ("redis+cluster://:hunter2@a:1,,b:2", "node 2 of the redis+cluster URL is empty"),
        ("redis+cluster://:hunter2@a:99999", "node 1 of the redis+cluster URL has port 99999"),
        ("redis+cluster://:hunter2@a b:1", "node 1 of the redis+cluster URL is not host[:port]"),
        ("redis+cluster://:hunter2@a:1/3", "only database 0"),
        ("redis+cluster://:hunter2@a:1?x=1", "unknown option 'x' in the redis+cluster URL"),
        ("redis+sentinel://:hunter2@s1:26379", "names the master's service"),
        ("redis+sentinel://:hunter2@s1/m/x", "the database of a redis+sentinel URL is a number"),
        ("redis+sentinel://:hunter2@s1/m/0/9", "names the master's service"),
        ("redis+sentinel://:hunter2@s1/m?db=2", "unknown option 'db'"),
        ("redis+sentinel://:hunter2@s1/m#frag", "has no #fragment"),
    ],
)
def test_malformed_url_is_one_line_without_the_password(url: str, says: str) -> None:
    """Each mistake is named on one line (with the expected form), the password never."""
    with pytest.raises(RedisUrlError) as info:
        parse_redis_url(url)
    message = str(info.value)
    assert says in message
    assert "hunter2" not in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_policy_accepts_cluster_and_sentinel_urls_and_names_a_bad_one(tmp_path: Path) -> None:
    """A policy's redis_url is checked by the same parser: good forms load, bad ones are issues."""
    good = tmp_path / "good.yaml"
    good.write_text(
        "version: 1\nfleet: {enabled: true, redis_url: 'redis+cluster://a:7000,b:7001'}\n",
        encoding="utf-8",
    )
    assert load_policy(good).fleet.redis_url == "redis+cluster://a:7000,b:7001"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nfleet:\n  redis_url: 'redis+sentinel://:hunter2@s1:26379'\n",
        encoding="utf-8",
    )
    (issue,) = check_policy(bad)
    assert (issue.line, issue.field) == (3, "fleet.redis_url")
    assert "names the master's service" in issue.message
    assert "hunter2" not in str(issue)


def test_connection_from_a_malformed_url_raises_before_any_io() -> None:
    """FleetConnection.from_url refuses a malformed cluster URL at once, with the parser's line."""
    fs.require_redis_py()
    from asr_resilience.fleet import FleetConnection

    with pytest.raises(RedisUrlError, match="only database 0"):
        FleetConnection.from_url("redis+cluster://:hunter2@127.0.0.1:1/5")


def test_keys_without_one_hash_tag_are_refused() -> None:
    """A limiter key or token prefix whose keys could land in two cluster slots: ValueError."""
    fs.require_redis_py()
    from asr_resilience.fleet import FleetConnection, FleetLimiter, RedisTokenStore

    connection = FleetConnection(None)
    try:
        with pytest.raises(ValueError, match="has no Redis hash tag"):
            FleetLimiter(connection, "myapp:limiter:appkey", quota=1)
        with pytest.raises(ValueError, match="has no Redis hash tag"):
            FleetLimiter(connection, "myapp:{}:limiter", quota=1)  # an empty tag is no tag
        with pytest.raises(ValueError, match="has no Redis hash tag"):
            RedisTokenStore(connection, key_prefix="app{}:", name="tok")
        # A tag in the prefix is a tag: every key of every scope then shares its slot.
        FleetLimiter(connection, "{myapp}:limiter:appkey", quota=1).close()
    finally:
        connection.close()
