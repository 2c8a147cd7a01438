-- SPDX-License-Identifier: MIT
-- 003_time_ordered_keys: the primary keys of live_messages and gift_records
-- put ts before msg_id, and the (platform, room_id, ts) indexes go.
--
-- The key's columns are the same, so it refuses the same duplicates; only
-- their order changes. With ts third, the key also serves every per-room time
-- range query (the API's messages and export, an analyst's WHERE room_id = …
-- AND ts BETWEEN …) that the second index served, and reads them already in
-- the API's order (ts, msg_id) without a sort. Each row costs one index
-- insertion instead of two, and new rows land at the right end of their
-- room's range instead of at a random msg_id: bench_persister measured about
-- 30% less PostgreSQL CPU per new row. A lookup by msg_id alone now needs
-- the room and a time range to use the index.
ALTER TABLE live_messages DROP CONSTRAINT live_messages_pkey;
ALTER TABLE live_messages ADD PRIMARY KEY (platform, room_id, ts, msg_id);
DROP INDEX live_messages_room_ts;
ALTER TABLE gift_records DROP CONSTRAINT gift_records_pkey;
ALTER TABLE gift_records ADD PRIMARY KEY (platform, room_id, ts, msg_id);
DROP INDEX gift_records_room_ts;
