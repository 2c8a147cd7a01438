-- SPDX-License-Identifier: MIT
-- 001_init: livetap's first schema. Applied once by lt_migrate_apply (which
-- records it in schema_migrations with its checksum); never edit it after it
-- has shipped: add a new NNN_*.sql instead. Objects are created unqualified,
-- so they land in the first schema of search_path (tests use a fresh one).

-- Rooms the fetcher supervisor watches. The API inserts and deletes rows; the
-- supervisor takes leases (FOR UPDATE SKIP LOCKED) and LISTENs on
-- livetap_rooms, which the trigger below notifies with 'platform:room_id'.
CREATE TABLE rooms (
	id          bigserial PRIMARY KEY,
	platform    text NOT NULL,
	room_id     text NOT NULL,
	enabled     boolean NOT NULL DEFAULT true,
	title       text,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	lease_owner text,
	lease_until timestamptz,
	last_state  text,
	last_error  text,
	UNIQUE (platform, room_id)
);

CREATE FUNCTION livetap_rooms_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('livetap_rooms', OLD.platform || ':' || OLD.room_id);
		RETURN OLD;
	END IF;
	PERFORM pg_notify('livetap_rooms', NEW.platform || ':' || NEW.room_id);
	RETURN NEW;
END
$$;

CREATE TRIGGER rooms_notify AFTER INSERT OR UPDATE OR DELETE ON rooms
	FOR EACH ROW EXECUTE FUNCTION livetap_rooms_notify();

-- One broadcast: opened by a live_start message, closed by live_end. The
-- counters grow only from messages that were new to live_messages.
CREATE TABLE live_sessions (
	id         bigserial PRIMARY KEY,
	platform   text NOT NULL,
	room_id    text NOT NULL,
	started_at timestamptz NOT NULL,
	ended_at   timestamptz,
	messages   bigint NOT NULL DEFAULT 0,
	gifts      bigint NOT NULL DEFAULT 0,
	gift_value bigint NOT NULL DEFAULT 0,
	likes      bigint NOT NULL DEFAULT 0,
	start_msg_id text,
	end_msg_id   text,
	UNIQUE (platform, room_id, started_at)
);
CREATE INDEX live_sessions_open ON live_sessions (platform, room_id, started_at DESC);

-- Every normalized message, partitioned by day on ts (UTC). Partitions are
-- named live_messages_pYYYYMMDD and made by livetap_ensure_partition; rows of
-- days without a partition land in live_messages_default.
CREATE TABLE live_messages (
	platform   text NOT NULL,
	room_id    text NOT NULL,
	ts         timestamptz NOT NULL,
	msg_id     text NOT NULL,
	type       text NOT NULL,
	user_id    text NOT NULL DEFAULT '',
	user_name  text NOT NULL DEFAULT '',
	content    text NOT NULL DEFAULT '',
	extra      jsonb NOT NULL DEFAULT '{}',
	count      bigint NOT NULL DEFAULT 0,
	value      bigint NOT NULL DEFAULT 0,
	session_id bigint,
	source_id  text NOT NULL DEFAULT '',
	seq        bigint NOT NULL DEFAULT 0,
	flags      integer NOT NULL DEFAULT 0,
	stored_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (platform, room_id, msg_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX live_messages_room_ts ON live_messages (platform, room_id, ts);
CREATE TABLE live_messages_default PARTITION OF live_messages DEFAULT;

-- Create the partition for day d (UTC) unless it exists. Rows of that day
-- already in the default partition are moved into the new partition in the
-- same transaction, so they never block the partition's creation. Returns
-- true if it created the partition. Concurrent callers serialize on an
-- advisory transaction lock per day.
CREATE FUNCTION livetap_ensure_partition(d date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	pname text := 'live_messages_p' || to_char(d, 'YYYYMMDD');
	lo timestamptz := (d::timestamp AT TIME ZONE 'UTC');
	hi timestamptz := ((d + 1)::timestamp AT TIME ZONE 'UTC');
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('livetap_partition:' || current_schema()),
	                              (d - date '2000-01-01'));
	IF EXISTS (SELECT 1 FROM pg_inherits i
	           JOIN pg_class c ON c.oid = i.inhrelid
	           JOIN pg_class p ON p.oid = i.inhparent
	           WHERE p.oid = 'live_messages'::regclass AND c.relname = pname
	             AND c.relnamespace = p.relnamespace) THEN
		RETURN false;
	END IF;
	EXECUTE format('CREATE TABLE %I (LIKE live_messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname);
	EXECUTE format('WITH moved AS (DELETE FROM live_messages_default WHERE ts >= $1 AND ts < $2 RETURNING *) '
	               'INSERT INTO %I SELECT * FROM moved', pname) USING lo, hi;
	EXECUTE format('ALTER TABLE live_messages ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
	               pname, lo, hi);
	RETURN true;
END
$$;

-- Per room and platform user: counted only from new messages.
CREATE TABLE user_statistics (
	platform   text NOT NULL,
	room_id    text NOT NULL,
	user_id    text NOT NULL,
	user_name  text NOT NULL DEFAULT '',
	messages   bigint NOT NULL DEFAULT 0,
	gifts      bigint NOT NULL DEFAULT 0,
	gift_value bigint NOT NULL DEFAULT 0,
	likes      bigint NOT NULL DEFAULT 0,
	first_seen timestamptz NOT NULL,
	last_seen  timestamptz NOT NULL,
	PRIMARY KEY (platform, room_id, user_id)
);

CREATE TABLE gift_records (
	platform  text NOT NULL,
	room_id   text NOT NULL,
	msg_id    text NOT NULL,
	ts        timestamptz NOT NULL,
	user_id   text NOT NULL,
	user_name text NOT NULL DEFAULT '',
	gift_name text NOT NULL DEFAULT '',
	count     bigint NOT NULL DEFAULT 0,
	value     bigint NOT NULL DEFAULT 0,
	currency  text NOT NULL DEFAULT '',
	session_id bigint,
	PRIMARY KEY (platform, room_id, msg_id, ts)
);
CREATE INDEX gift_records_room_ts ON gift_records (platform, room_id, ts);

-- Snapshots, once a minute, of the processor's hot words per window
-- (window is a reserved word in SQL: quote it, "window").
CREATE TABLE hotword_statistics (
	platform     text NOT NULL,
	room_id      text NOT NULL,
	"window"     text NOT NULL,
	bucket_start timestamptz NOT NULL,
	word         text NOT NULL,
	count        bigint NOT NULL DEFAULT 0,
	score        double precision NOT NULL DEFAULT 0,
	rank         integer NOT NULL DEFAULT 0,
	PRIMARY KEY (platform, room_id, "window", bucket_start, word)
);

-- One row per user per day with a chat containing 签到; streak counts the
-- consecutive days up to this one.
CREATE TABLE checkins (
	platform text NOT NULL,
	room_id  text NOT NULL,
	user_id  text NOT NULL,
	day      date NOT NULL,
	streak   integer NOT NULL DEFAULT 1,
	first_ts timestamptz,
	PRIMARY KEY (platform, room_id, user_id, day)
);

-- Read by the processor: room NULL applies to every room ('platform:room_id'
-- otherwise).
CREATE TABLE keyword_rules (
	id         bigserial PRIMARY KEY,
	room       text,
	kind       text NOT NULL CHECK (kind IN ('block', 'alert')),
	pattern    text NOT NULL,
	enabled    boolean NOT NULL DEFAULT true,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE error_logs (
	id      bigserial PRIMARY KEY,
	ts      timestamptz NOT NULL DEFAULT now(),
	source  text NOT NULL,
	kind    text NOT NULL,
	message text NOT NULL,
	details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX error_logs_ts ON error_logs (ts);

CREATE TABLE audit_logs (
	id          bigserial PRIMARY KEY,
	ts          timestamptz NOT NULL DEFAULT now(),
	actor       text NOT NULL,
	action      text NOT NULL,
	target      text,
	details     jsonb NOT NULL DEFAULT '{}',
	remote_addr text
);
CREATE INDEX audit_logs_ts ON audit_logs (ts);
