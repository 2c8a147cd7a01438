# SPDX-License-Identifier: MIT
# tests/e2e/lib/compare.py: the assertions of test_pipeline_faults.sh, on the
# files it collected. Exit 0 when every count agrees, 1 otherwise; prints
# every comparison it made.
#
#   python3 compare.py DIR
#
# DIR holds: total (messages the producers were asked to send), producer-*.json (lt-producer summary lines), rooms (one room id
# a line), per room R: R.redis-users (lines "UID messages gifts gift_value
# likes"), R.redis-zset (lines "UID score" of live:{bilibili:R}:user_stats),
# R.hot (the planted word's ZSCORE in hotwords:30m), R.pg-users (lines
# "UID|messages|gifts|gift_value|likes" of user_statistics), R.pg-derived
# (the same, computed from live_messages), R.pg-counts ("total|distinct|
# chats|gifts|likes").
import collections
import glob
import json
import os
import sys

d = sys.argv[1]
bad = 0


def check(what, got, want):
    global bad
    ok = got == want
    print("%s %s: got %s, want %s" % ("ok  " if ok else "FAIL", what, got, want))
    if not ok:
        bad += 1


def table(path, sep=None):
    rows = {}
    for line in open(path):
        f = line.split(sep) if sep else line.split()
        if len(f) < 2 or not f[0]:
            continue
        rows[f[0].strip()] = [int(float(x)) for x in f[1:]]
    return rows


prods = [json.loads(open(p).read().strip().splitlines()[-1]) for p in sorted(glob.glob(os.path.join(d, "producer-*.json")))]
rooms = [r.strip() for r in open(os.path.join(d, "rooms")) if r.strip()]
check("producers", len(prods), 4)
check("producers drained", sum(1 for p in prods if p["drained"]), len(prods))
print("     producers: sent %d, resent batches %d, recovered records %d"
      % (sum(p["sent"] for p in prods), sum(p["delivery"]["resent"] for p in prods),
         sum(p["delivery"]["recovered_records"] for p in prods)))
check("messages sent in all", sum(p["sent"] for p in prods), int(open(os.path.join(d, "total")).read()))

for room in rooms:
    mine = [p for p in prods if p["room"] == room]
    want_users = collections.Counter()
    for p in mine:
        want_users.update(p["user_messages"])
    sent = sum(p["sent"] for p in mine)
    chats = sum(p["chats"] for p in mine)
    gifts = sum(p["gifts"] for p in mine)
    likes = sum(p["likes"] for p in mine)
    planted = sum(p["planted"] for p in mine)
    print("---- room bilibili:%s: %d producers, %d messages (%d chats, %d gifts, %d likes), %d users "
          "with chats, planted word in %d chats" % (room, len(mine), sent, chats, gifts, likes,
                                                    len(want_users), planted))

    c = [int(x) for x in open(os.path.join(d, room + ".pg-counts")).read().strip().split("|")]
    check("PostgreSQL live_messages rows", c[0], sent)
    check("PostgreSQL distinct msg_id", c[1], sent)
    check("PostgreSQL chat/gift/like rows", c[2:5], [chats, gifts, likes])

    redis_users = table(os.path.join(d, room + ".redis-users"))
    got = {u: v[0] for u, v in redis_users.items() if v[0]}
    diff = sorted(u for u in set(got) | set(want_users) if got.get(u, 0) != want_users.get(u, 0))
    check("Redis live:{ROOM}:user:UID messages, users that differ from the producers' sum",
          diff[:5], [])
    check("Redis sum of per-user messages", sum(got.values()), chats)
    zset = {u: v[0] for u, v in table(os.path.join(d, room + ".redis-zset")).items() if v[0]}
    check("Redis user_stats sorted set equals the producers' per-user counts", zset == dict(want_users), True)

    hot = open(os.path.join(d, room + ".hot")).read().strip()
    check("Redis hotwords:30m score of the planted word", int(float(hot or 0)), planted)

    pg_users = table(os.path.join(d, room + ".pg-users"), "|")
    pgm = {u: v[0] for u, v in pg_users.items() if v[0]}
    diff = sorted(u for u in set(pgm) | set(want_users) if pgm.get(u, 0) != want_users.get(u, 0))
    check("PostgreSQL user_statistics.messages, users that differ from the producers' sum", diff[:5], [])
    derived = table(os.path.join(d, room + ".pg-derived"), "|")
    check("PostgreSQL user_statistics (messages, gifts, gift_value, likes) equal live_messages' sums",
          sorted((u, v) for u, v in pg_users.items() if u in derived) == sorted(derived.items())
          and set(derived) <= set(pg_users), True)
    rd = {u: v for u, v in redis_users.items()}
    same = all(rd.get(u) == v for u, v in derived.items())
    if not same:
        ex = [(u, rd.get(u), v) for u, v in derived.items() if rd.get(u) != v][:3]
        print("     e.g. (user, Redis, PostgreSQL): %s" % ex)
    check("Redis per-user (messages, gifts, gift_value, likes) equal PostgreSQL's", same, True)

print("%d comparison(s) failed" % bad if bad else "every count agrees")
sys.exit(1 if bad else 0)
