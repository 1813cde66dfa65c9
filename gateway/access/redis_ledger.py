"""`RedisLedger`: the ledger of several nodes (`[storage] redis`), on one Redis server.

The same facts as the machine's SQLite ledger (gateway.access.ledger), kept as Redis
structures under `gateway:` so that each question is one cheap command:

- `call:<id>`: a hash per call (site, client, owner, started, answered, ended);
- `live:site:<site>`, `live:client:<client>`: the live calls, sorted by the time each
  stops counting even if nobody says it ended (`lasts`: ringing plus the maximum call
  duration), so a call whose end was lost (a node gone, Redis unreachable for a moment) stops
  holding a place on its own;
- `starts:<site>:<client>`: when the visitor's calls of the site started (24 hours kept);
- `talking:<site>` (answered, not ended) and `talked:<site>` (ended: `<id>:<seconds>`
  sorted by the end): the spend guard's minutes;
- `owner:<owner>`: the calls and checks a worker holds, released when it dies;
- `check:<id>`, `checks:live:<client>`, `checks:starts:<client>`: pre-call checks;
- `used:<key>`: a single-use key, expiring with what it stood for.

Admission is optimistic: WATCH the keys the decision reads, read the facts (one Lua script),
let the caller decide, then add the call in MULTI/EXEC; if another worker changed a watched
key meanwhile, EXEC fails and the whole decision runs again on fresh facts. Two nodes can
therefore never both admit the last call a limit allows. Answers and ends are Lua scripts,
atomic and in any order. Errors of the connection become `LedgerUnavailable`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from gateway.access.ledger import DAY, HOUR, CallFacts, CheckFacts, LedgerUnavailable
from gateway.storage.redis_server import PREFIX

T = TypeVar("T")

ENDED_LINGER = 120  # seconds an ended call's hash stays (a late answer sees it ended)

# KEYS: live:site, live:client, talking:site, talked:site, starts:site:client
# ARGV: now, since
_CALL_FACTS = """
local now, since = tonumber(ARGV[1]), tonumber(ARGV[2])
local site_calls = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
local client_calls = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
local talk = 0
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[2], '+inf')) do
  talk = talk + tonumber(string.match(member, ':([^:]+)$'))
end
local talking = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
for i = 1, #talking, 2 do
  local deadline = redis.call('ZSCORE', KEYS[1], talking[i])
  if deadline and tonumber(deadline) > now then
    talk = talk + math.max(0, now - tonumber(talking[i + 1]))
  end
end
local starts = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. ARGV[2], '+inf', 'WITHSCORES')
return {site_calls, client_calls, tostring(talk), starts}
"""

# KEYS: call:<id>; ARGV: prefix, id, now
_ANSWERED = """
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 or redis.call('HEXISTS', h, 'ended') == 1
   or redis.call('HEXISTS', h, 'answered') == 1 then
  return 0
end
redis.call('HSET', h, 'answered', ARGV[3])
local talking = ARGV[1] .. 'talking:' .. redis.call('HGET', h, 'site')
redis.call('ZADD', talking, ARGV[3], ARGV[2])
redis.call('EXPIRE', talking, 2 * 86400)
return 1
"""

# KEYS: call:<id>; ARGV: prefix, id, now, answered_at ('' if unknown), linger
_ENDED = """
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 or redis.call('HEXISTS', h, 'ended') == 1 then
  return -1
end
local p, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local site = redis.call('HGET', h, 'site')
local client = redis.call('HGET', h, 'client')
local answered = redis.call('HGET', h, 'answered')
if not answered and ARGV[4] ~= '' then answered = ARGV[4] end
redis.call('HSET', h, 'ended', ARGV[3])
redis.call('EXPIRE', h, tonumber(ARGV[5]))
redis.call('ZREM', p .. 'live:site:' .. site, id)
redis.call('ZREM', p .. 'live:client:' .. client, id)
redis.call('ZREM', p .. 'talking:' .. site, id)
redis.call('SREM', p .. 'owner:' .. redis.call('HGET', h, 'owner'), 'call:' .. id)
if not answered then return 0 end
local seconds = math.max(0, now - tonumber(answered))
local talked = p .. 'talked:' .. site
redis.call('ZADD', talked, now, id .. ':' .. seconds)
redis.call('ZREMRANGEBYSCORE', talked, '-inf', now - 86400)
redis.call('EXPIRE', talked, 2 * 86400)
return 1
"""

# KEYS: check:<id>; ARGV: prefix, id
_CHECK_ENDED = """
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return 0 end
local client = redis.call('HGET', h, 'client')
redis.call('ZREM', ARGV[1] .. 'checks:live:' .. client, ARGV[2])
redis.call('SREM', ARGV[1] .. 'owner:' .. redis.call('HGET', h, 'owner'), 'check:' .. ARGV[2])
redis.call('DEL', h)
return 1
"""


def _number(value: float) -> str:
    return repr(float(value))


class RedisLedger:
    """The ledger of every node of a service, in Redis; `owner` names this worker."""

    def __init__(self, client: aioredis.Redis, owner: str, *, describe: str = "Redis") -> None:
        self._redis = client
        self.owner = owner
        self._where = describe  # the server, for errors (its URL without password)
        self._facts = client.register_script(_CALL_FACTS)
        self._answered = client.register_script(_ANSWERED)
        self._ended = client.register_script(_ENDED)
        self._check_ended = client.register_script(_CHECK_ENDED)

    async def close(self) -> None:
        """The client is the process's (gateway.process.shared closes it)."""

    async def _guard(self, action: Awaitable[T]) -> T:
        try:
            return await action
        except (RedisError, OSError) as exc:
            if isinstance(exc, WatchError):
                raise
            raise LedgerUnavailable(
                f"the shared ledger ({self._where}) cannot be reached: {exc}"
            ) from exc

    # ------------------------------------------------------------------ calls
    async def admit_call(
        self,
        site: str,
        client: str,
        now: float,
        decide: Callable[[CallFacts], None],
        *,
        lasts: float,
    ) -> str:
        call = secrets.token_hex(8)
        await self._guard(self._admit_call(call, site, client, now, decide, lasts, live=True))
        return call

    async def count_request(
        self, site: str, client: str, now: float, decide: Callable[[CallFacts], None]
    ) -> None:
        call = secrets.token_hex(8)
        await self._guard(self._admit_call(call, site, client, now, decide, 0.0, live=False))

    async def _admit_call(
        self,
        call: str,
        site: str,
        client: str,
        now: float,
        decide: Callable[[CallFacts], None],
        lasts: float,
        *,
        live: bool,
    ) -> None:
        p = PREFIX
        live_site, live_client = f"{p}live:site:{site}", f"{p}live:client:{client}"
        talking, talked = f"{p}talking:{site}", f"{p}talked:{site}"
        starts = f"{p}starts:{site}:{client}"
        keys = [live_site, live_client, talking, talked, starts]
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    raw = await self._facts(keys, [_number(now), _number(now - DAY)], client=pipe)
                    decide(_call_facts(raw))
                    pipe.multi()
                    pipe.zadd(starts, {call: now})
                    pipe.zremrangebyscore(starts, "-inf", now - DAY)
                    pipe.expire(starts, int(DAY) + 60)
                    if live:
                        deadline = now + lasts
                        hash_key = f"{p}call:{call}"
                        pipe.hset(
                            hash_key,
                            mapping={
                                "site": site,
                                "client": client,
                                "owner": self.owner,
                                "started": _number(now),
                            },
                        )
                        pipe.expire(hash_key, math.ceil(lasts) + ENDED_LINGER)
                        for key in (live_site, live_client):
                            pipe.zremrangebyscore(key, "-inf", now)
                            pipe.zadd(key, {call: deadline})
                            pipe.expire(key, math.ceil(lasts) + 60, gt=True)
                            pipe.expire(key, math.ceil(lasts) + 60, nx=True)
                        pipe.sadd(f"{p}owner:{self.owner}", f"call:{call}")
                        pipe.expire(f"{p}owner:{self.owner}", int(DAY) * 2)
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # another worker changed a fact meanwhile: decide again
                finally:
                    await pipe.reset()

    async def live_calls(
        self, now: float, *, site: str | None = None, client: str | None = None
    ) -> int:
        if site is None and client is None:
            raise ValueError("count the live calls of a site or of a client")
        keys = []
        if site is not None:
            keys.append(f"{PREFIX}live:site:{site}")
        if client is not None:
            keys.append(f"{PREFIX}live:client:{client}")
        after = f"({_number(now)}"
        if len(keys) == 1:
            return int(await self._guard(self._redis.zcount(keys[0], after, "+inf")))
        site_ids = await self._guard(self._redis.zrangebyscore(keys[0], after, "+inf"))
        client_ids = await self._guard(self._redis.zrangebyscore(keys[1], after, "+inf"))
        return len(set(site_ids) & set(client_ids))

    async def talk_seconds(self, site: str, since: float, now: float) -> float:
        p = PREFIX
        keys = [f"{p}live:site:{site}", "", f"{p}talking:{site}", f"{p}talked:{site}", ""]
        keys[1] = keys[4] = f"{p}none"
        raw = await self._guard(self._facts(keys, [_number(now), _number(since)]))
        return float(raw[2])

    async def call_answered(self, call: str, now: float) -> None:
        await self._guard(self._answered([f"{PREFIX}call:{call}"], [PREFIX, call, _number(now)]))

    async def call_ended(self, call: str, now: float, answered_at: float | None) -> None:
        answered = "" if answered_at is None else _number(answered_at)
        await self._guard(
            self._ended(
                [f"{PREFIX}call:{call}"], [PREFIX, call, _number(now), answered, ENDED_LINGER]
            )
        )

    async def release(self, owner: str, now: float) -> int:
        members = await self._guard(self._redis.smembers(f"{PREFIX}owner:{owner}"))
        ended = 0
        for member in members:
            kind, _, key = str(member).partition(":")
            if kind == "call":
                result = await self._guard(
                    self._ended(
                        [f"{PREFIX}call:{key}"], [PREFIX, key, _number(now), "", ENDED_LINGER]
                    )
                )
                ended += result >= 0
            elif kind == "check":
                await self.check_ended(key, now)
        await self._guard(self._redis.delete(f"{PREFIX}owner:{owner}"))
        return ended

    # ------------------------------------------------------------------ pre-call checks
    async def admit_check(
        self, client: str, now: float, decide: Callable[[CheckFacts], None], *, lasts: float
    ) -> str:
        check = secrets.token_hex(8)
        await self._guard(self._admit_check(check, client, now, decide, lasts))
        return check

    async def _admit_check(
        self,
        check: str,
        client: str,
        now: float,
        decide: Callable[[CheckFacts], None],
        lasts: float,
    ) -> None:
        p = PREFIX
        live, starts = f"{p}checks:live:{client}", f"{p}checks:starts:{client}"
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(live, starts)
                    count = await pipe.zcount(live, f"({_number(now)}", "+inf")
                    started: list[Any] = await pipe.zrangebyscore(
                        starts, f"({_number(now - HOUR)}", "+inf", withscores=True
                    )
                    decide(CheckFacts(int(count), tuple(float(pair[1]) for pair in started)))
                    pipe.multi()
                    pipe.hset(f"{p}check:{check}", mapping={"client": client, "owner": self.owner})
                    pipe.expire(f"{p}check:{check}", math.ceil(lasts) + 60)
                    pipe.zremrangebyscore(live, "-inf", now)
                    pipe.zadd(live, {check: now + lasts})
                    pipe.expire(live, math.ceil(lasts) + 60)
                    pipe.zadd(starts, {check: now})
                    pipe.zremrangebyscore(starts, "-inf", now - HOUR)
                    pipe.expire(starts, int(HOUR) + 60)
                    pipe.sadd(f"{p}owner:{self.owner}", f"check:{check}")
                    await pipe.execute()
                    return
                except WatchError:
                    continue
                finally:
                    await pipe.reset()

    async def check_ended(self, check: str, now: float) -> None:
        await self._guard(self._check_ended([f"{PREFIX}check:{check}"], [PREFIX, check]))

    # ------------------------------------------------------------------ single use
    async def first_use(self, key: str, expires: float, now: float) -> bool:
        # Remembered for as long as it could be used (at least a second), by Redis's clock.
        remember = max(expires - now, 1.0)
        stored = await self._guard(
            self._redis.set(f"{PREFIX}used:{key}", "1", nx=True, px=math.ceil(remember * 1000))
        )
        return bool(stored)


def _call_facts(raw: list[Any]) -> CallFacts:
    site_calls, client_calls, talk, starts = raw
    return CallFacts(
        site_calls=int(site_calls),
        client_calls=int(client_calls),
        talk_seconds=float(talk),
        starts=tuple(float(starts[i + 1]) for i in range(0, len(starts), 2)),
    )
