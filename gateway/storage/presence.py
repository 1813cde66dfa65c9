"""Which workers of the service are alive, and what each would leave if it died: heartbeats
and the SIP dialogs of its calls, in Redis (`[storage] redis`).

Every worker (`<node>/worker-<i>`) beats about once a second (`beat`), with the SIP side of
its live calls whenever it changed (gateway.process.journal's entries: what a BYE or a
CANCEL needs). `alive` is a sorted set of workers by their last beat, timed by Redis's own
clock, so the nodes' clocks need not agree. A worker whose last beat is older than the
deadline is taken by exactly one claimer (`claim_lost`: removing it from `alive` is the
claim), which ends its calls from what it published and then says it is done (`done`);
while that runs, `reaping:<worker>` names the claimer, so a node starting again waits for
it before it reuses the name. A worker that finds it was claimed while it lived (cut off
from Redis longer than the deadline) learns it from its next beat (`BeatResult.claimed`):
its calls were ended by another node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.storage.redis_server import PREFIX

if TYPE_CHECKING:  # redis is imported only with `[storage] redis` (gateway.process.shared)
    import redis.asyncio as aioredis

ALIVE = f"{PREFIX}alive"
REAPING_LIFETIME = 60  # seconds a claim lasts if its claimer dies too
CLAIMED_LIFETIME = 3600  # seconds a worker claimed while alive may learn it
DIALOGS_LIFETIME = 2 * 24 * 3600

# KEYS: alive, dialogs:<w>, claimed:<w>; ARGV: worker, dialogs JSON ('' unchanged), lifetime
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local was = redis.call('ZSCORE', KEYS[1], ARGV[1])
local claimed = 0
if not was and redis.call('EXISTS', KEYS[3]) == 1 then claimed = 1 end
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[3])) end
local absent = 0
if not was then absent = 1 end
return {claimed, absent}
"""

# KEYS: alive; ARGV: seconds without a beat, claimer, prefix, reaping lifetime, claimed lifetime
_CLAIM_LOST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local lost = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
for _, worker in ipairs(lost) do
  redis.call('ZREM', KEYS[1], worker)
  redis.call('SET', ARGV[3] .. 'reaping:' .. worker, ARGV[2], 'EX', tonumber(ARGV[4]))
  redis.call('SET', ARGV[3] .. 'claimed:' .. worker, ARGV[2], 'EX', tonumber(ARGV[5]))
end
return lost
"""

# KEYS: alive, reaping:<w>; ARGV: worker, claimer, reaping lifetime
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""

# KEYS: alive, reaping:<w>; ARGV: worker, claimer, reaping lifetime
_CLAIM_ABSENT = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', tonumber(ARGV[3])) then return 1 end
return 0
"""

# KEYS: alive, reaping:<w>, claimed:<w>; ARGV: worker
_JOIN = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1e6, ARGV[1])
return 1
"""


# KEYS: lease:<name>; ARGV: holder, seconds
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return 1
"""


@dataclass(frozen=True, slots=True)
class BeatResult:
    claimed: bool  # another node took this worker for dead and ended its calls
    absent: bool  # it was not listed (new, claimed, or Redis lost its data): publish all


class Presence:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._beat = client.register_script(_BEAT)
        self._claim_lost = client.register_script(_CLAIM_LOST)
        self._claim = client.register_script(_CLAIM)
        self._claim_absent = client.register_script(_CLAIM_ABSENT)
        self._join = client.register_script(_JOIN)
        self._hold = client.register_script(_HOLD)

    async def hold(self, lease: str, holder: str, seconds: int) -> bool:
        """Take or keep `lease` for `seconds` unless another holder has it: what one
        worker of the whole service does (tell the site's owners of destinations' health)."""
        return bool(await self._hold([f"{PREFIX}lease:{lease}"], [holder, seconds]))

    async def join(self, worker: str) -> bool:
        """`worker` starts: listed as alive, unless its calls from a former life are being
        ended right now (False: try again shortly; nothing of the former life may be
        touched by the new one before that is done)."""
        joined = await self._join(
            [ALIVE, f"{PREFIX}reaping:{worker}", f"{PREFIX}claimed:{worker}"], [worker]
        )
        return bool(joined)

    async def beat(self, worker: str, dialogs: list[dict] | None) -> BeatResult:
        """`worker` is alive; `dialogs` (None: unchanged) is what ending its calls needs."""
        claimed, absent = await self._beat(
            [ALIVE, f"{PREFIX}dialogs:{worker}", f"{PREFIX}claimed:{worker}"],
            [worker, "" if dialogs is None else json.dumps(dialogs), DIALOGS_LIFETIME],
        )
        return BeatResult(claimed=bool(claimed), absent=bool(absent))

    async def leave(self, worker: str) -> None:
        """`worker` stops cleanly, its calls ended: nothing of it is left to end."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(ALIVE, worker)
            pipe.delete(f"{PREFIX}dialogs:{worker}")
            await pipe.execute()

    async def claim_lost(self, after: float, claimer: str) -> list[str]:
        """The workers silent for `after` seconds, each returned to one claimer only."""
        lost = await self._claim_lost(
            [ALIVE], [after, claimer, PREFIX, REAPING_LIFETIME, CLAIMED_LIFETIME]
        )
        return [str(worker) for worker in lost]

    async def claim(self, worker: str, claimer: str) -> bool:
        """Take `worker` (its process is known to be gone) unless another claimer has."""
        taken = await self._claim(
            [ALIVE, f"{PREFIX}reaping:{worker}"], [worker, claimer, REAPING_LIFETIME]
        )
        return bool(taken)

    async def claim_absent(self, worker: str, claimer: str) -> bool:
        """Take `worker` if it is not alive (it left entries, but no longer beats) and
        nobody else has."""
        taken = await self._claim_absent(
            [ALIVE, f"{PREFIX}reaping:{worker}"], [worker, claimer, REAPING_LIFETIME]
        )
        return bool(taken)

    async def reaping(self, worker: str) -> str | None:
        """Who is ending `worker`'s calls now, if anyone."""
        value = await self._redis.get(f"{PREFIX}reaping:{worker}")
        return None if value is None else str(value)

    async def dialogs(self, worker: str) -> list[dict]:
        """What `worker` published last (none if nothing or unreadable)."""
        text = await self._redis.get(f"{PREFIX}dialogs:{worker}")
        try:
            entries = json.loads(text) if text else []
        except ValueError:
            return []
        return entries if isinstance(entries, list) else []

    async def done(self, worker: str) -> None:
        """`worker`'s calls are ended: forget what it published and the claim."""
        await self._redis.delete(f"{PREFIX}dialogs:{worker}", f"{PREFIX}reaping:{worker}")

    async def alive(self) -> dict[str, float]:
        """Every worker that beats, with its last beat (Redis's clock)."""
        beats: list[Any] = await self._redis.zrange(ALIVE, 0, -1, withscores=True)
        return {str(pair[0]): float(pair[1]) for pair in beats}

    async def being_reaped(self) -> set[str]:
        return {
            key.removeprefix(f"{PREFIX}reaping:")
            async for key in self._redis.scan_iter(match=f"{PREFIX}reaping:*", count=100)
        }

    async def published(self) -> set[str]:
        """Workers that left dialogs (alive, or dead and not yet ended)."""
        return {
            key.removeprefix(f"{PREFIX}dialogs:")
            async for key in self._redis.scan_iter(match=f"{PREFIX}dialogs:*", count=100)
        }
