-- SPDX-License-Identifier: MIT
-- 002_c_collation: identifiers (platform, room and user ids, message ids,
-- types) compare byte by byte (COLLATE "C"), not by the database's
-- linguistic collation: that is what they mean, and it makes every primary
-- key lookup, sort and GROUP BY of the write path cheaper (memcmp instead of
-- strcoll). Partitions made later copy the collations (LIKE live_messages).
ALTER TABLE live_messages
	ALTER COLUMN platform TYPE text COLLATE "C",
	ALTER COLUMN room_id TYPE text COLLATE "C",
	ALTER COLUMN msg_id TYPE text COLLATE "C",
	ALTER COLUMN type TYPE text COLLATE "C",
	ALTER COLUMN user_id TYPE text COLLATE "C",
	ALTER COLUMN source_id TYPE text COLLATE "C";
ALTER TABLE user_statistics
	ALTER COLUMN platform TYPE text COLLATE "C",
	ALTER COLUMN room_id TYPE text COLLATE "C",
	ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE gift_records
	ALTER COLUMN platform TYPE text COLLATE "C",
	ALTER COLUMN room_id TYPE text COLLATE "C",
	ALTER COLUMN msg_id TYPE text COLLATE "C",
	ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE live_sessions
	ALTER COLUMN platform TYPE text COLLATE "C",
	ALTER COLUMN room_id TYPE text COLLATE "C";
ALTER TABLE checkins
	ALTER COLUMN platform TYPE text COLLATE "C",
	ALTER COLUMN room_id TYPE text COLLATE "C",
	ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE hotword_statistics
	ALTER COLUMN platform TYPE text COLLATE "C",
	ALTER COLUMN room_id TYPE text COLLATE "C";
-- Counters are updated in place many times a minute: leave room on each page
-- so the updates stay HOT (no new index entry per update).
ALTER TABLE user_statistics SET (fillfactor = 80);
ALTER TABLE live_sessions SET (fillfactor = 80);
