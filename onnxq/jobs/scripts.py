"""The Lua scripts of the job store (onnxq/jobs/store.py), and the end announcements they publish.

Each script is one command: one reply to read, where a MULTI of the same writes has one more per
write, and nothing of it half-applied if the connection drops.
"""

from __future__ import annotations

from onnxq.jobs import keys

# A job's end is announced (keys.JOBS_ENDED says where) with its final record when that is small
# (a single-row result is a few hundred bytes): a request waiting for it answers from the message
# instead of reading the record back. Larger records are announced by id alone.
ENDED_RECORD_MAX_BYTES = 16 * 1024


def ended_message(job_id: str, record: bytes) -> bytes:
    """What an end announcement carries: `<job id>` or `<job id> <final record>`."""
    if len(record) <= ENDED_RECORD_MAX_BYTES:
        return job_id.encode() + b" " + record
    return job_id.encode()


def parse_ended_message(data: bytes) -> tuple[str, bytes | None]:
    """(job id, its final record if the message carries it)."""
    job_id, _, record = data.partition(b" ")
    return job_id.decode(), record or None


# A new job in one command (one reply to read, where a MULTI of five has seven): the record
# KEYS[1] unless it exists, its rows KEYS[2] (ARGV[7], when ARGV[6] is "1"), its tombstone
# KEYS[3], its place in the active index KEYS[4], and its broker message ARGV[9] pushed on
# KEYS[5] (when ARGV[8] is "1").
CREATE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') then return 0 end
if ARGV[6] == '1' then redis.call('SET', KEYS[2], ARGV[7], 'EX', ARGV[2]) end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
if ARGV[8] == '1' then redis.call('LPUSH', KEYS[5], ARGV[9]) end
return 1
"""

# What a watched mark holds when polls of more than one gateway process watch the job: its end
# is announced on the shared channel, heard by every process. An older release marked every
# watched job with LEGACY, announced there too.
SHARED = "*"
LEGACY = "1"

# Announcing a job's end inside a script (ARGV[1] is keys.JOBS_ENDED): on its waiter's channel,
# if it has one, and to the waiting polls that watch it: on the channel their watched mark names
# (WATCH below) unless that is the waiter's, or on the shared channel for a SHARED or LEGACY mark.
ANNOUNCE = (
    """
local function announce(message, notify, watched)
  if notify ~= '' then redis.call('PUBLISH', notify, message) end
  local mark = redis.call('GET', watched)
  if mark == '"""
    + SHARED
    + """' or mark == '"""
    + LEGACY
    + """' then
    redis.call('PUBLISH', ARGV[1], message)
  elseif mark and mark ~= notify then
    redis.call('PUBLISH', mark, message)
  end
end
"""
)

# Marking jobs watched by a waiting poll and reading their records, in one command. KEYS[1..n]
# are the watched keys, KEYS[n+1..2n] the record keys; ARGV[1] is the channel of the poll's
# gateway process, ARGV[2] the mark's lifetime in seconds. A mark names the one process whose
# polls watch the job, so that its end wakes that process alone; a second process watching it
# makes the mark SHARED. Of two marks' lifetimes the longer is kept. Returns the records.
WATCH = (
    """
local n = #KEYS / 2
local records = {}
for i = 1, n do
  local seen = redis.call('GET', KEYS[i])
  local mark = ARGV[1]
  if seen and seen ~= mark then mark = '"""
    + SHARED
    + """' end
  local seconds = math.max(tonumber(ARGV[2]), redis.call('TTL', KEYS[i]))
  redis.call('SET', KEYS[i], mark, 'EX', seconds)
  records[i] = redis.call('GET', KEYS[n + i])
end
return records
"""
)

# Claims, written only where the record is unchanged since the claim read it (the batch's
# compare-and-set; WATCH would cost two more round trips). KEYS[1] is the active index, then n
# record keys, their n rows keys and their n watched keys; ARGV[1] the shared channel of end
# announcements, ARGV[2] the TTL, ARGV[3] the claim time, then per job: record as read, new
# record, job id, its end announcement ("" unless the claim ended it) and its waiter's channel.
# Returns the positions of records that changed.
CLAIM = (
    ANNOUNCE
    + """
local n = (#KEYS - 1) / 3
local changed = {}
for i = 1, n do
  local at = 3 + (i - 1) * 5
  if redis.call('GET', KEYS[1 + i]) ~= ARGV[at + 1] then
    changed[#changed + 1] = i
  else
    redis.call('SET', KEYS[1 + i], ARGV[at + 2], 'EX', ARGV[2])
    redis.call('EXPIRE', KEYS[1 + n + i], ARGV[2])
    if ARGV[at + 4] ~= '' then
      redis.call('ZREM', KEYS[1], ARGV[at + 3])
      announce(ARGV[at + 4], ARGV[at + 5], KEYS[1 + 2 * n + i])
    else
      redis.call('ZADD', KEYS[1], ARGV[3], ARGV[at + 3])
    end
  end
end
return changed
"""
)

# Final states of claimed jobs. KEYS[1] is the active index, KEYS[2] and KEYS[3] the broker's
# hash and index of unacknowledged messages, then n record keys, their n rows keys and their n
# watched keys; ARGV[1] the shared channel of end announcements, ARGV[2] the TTL, then per job:
# its id, final record, end announcement and waiter's channel, then the delivery tags of the
# messages to acknowledge with them (none: KEYS[2] and KEYS[3] are not touched). A record that
# expired meanwhile is not recreated (SET XX); the inputs are no longer needed; the announcements
# go out after every write, so a woken poll that reads a record finds its final state. Returns 1
# or 0 per job: whether its record was written.
STORE = (
    ANNOUNCE
    + """
local n = (#KEYS - 3) / 3
local written, ids = {}, {}
for i = 1, n do
  local at = 3 + (i - 1) * 4
  written[i] = redis.call('SET', KEYS[3 + i], ARGV[at + 1], 'EX', ARGV[2], 'XX') and 1 or 0
  redis.call('DEL', KEYS[3 + n + i])
  ids[i] = ARGV[at]
end
if n > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
for i = 1, n do
  local at = 3 + (i - 1) * 4
  announce(ARGV[at + 2], ARGV[at + 3], KEYS[3 + 2 * n + i])
end
local first_tag = 3 + 4 * n
if #ARGV >= first_tag then
  local tags = {unpack(ARGV, first_tag)}
  redis.call('HDEL', KEYS[2], unpack(tags))
  redis.call('ZREM', KEYS[3], unpack(tags))
end
return written
"""
)


def record_rows_watched(job_ids: list[str]) -> list[str]:
    """The per-job KEYS of the claim and store scripts: n record keys, their n rows keys and
    their n watched keys."""
    return (
        [keys.job(job_id) for job_id in job_ids]
        + [keys.rows(job_id) for job_id in job_ids]
        + [keys.watched(job_id) for job_id in job_ids]
    )
