/* SPDX-License-Identifier: MIT */
/*
 * settings: the one declared table of livetap's configuration, read by
 * config.c for every process and rendered into the README by
 * lt_config_reference_md.
 *
 * Each entry: key ("section.key"), type, default as text (may use ${key} of
 * another plain setting, usually ${state_dir}), environment variable (NULL =
 * LIVETAP_SECTION_KEY), min/max for integers, and one line of help.
 * Sections are comment blocks: add a process's keys inside its block, keep the
 * table terminated by the NULL entry, and keep keys unique (test_config
 * checks).
 */
#include "common/config.h"

/* One setting per line reads better than the formatter's layout. */
/* clang-format off */
#define STR(k, d, h) {k, LT_CFG_STR, d, NULL, 0, 0, h}
#define SECRET(k, h) {k, LT_CFG_SECRET, NULL, NULL, 0, 0, h}
#define LIST(k, d, h) {k, LT_CFG_LIST, d, NULL, 0, 0, h}
#define INT(k, d, lo, hi, h) {k, LT_CFG_INT, d, NULL, lo, hi, h}
#define BOOL(k, d, h) {k, LT_CFG_BOOL, d, NULL, 0, 0, h}

const struct lt_cfg_def lt_cfg_table[] = {
	/* ---- global ------------------------------------------------------ */
	STR("state_dir", "./var", "where sockets, spools and logs live by default"),
	STR("log.level", "info", "debug, info, warn, error or off"),
	STR("log.file", "", "also write log lines to this file (empty: stderr only)"),
	BOOL("log.stderr", "true", "write log lines to stderr (turn off when log.file is enough)"),
	INT("log.max_bytes", "10485760", 4096, INT64_C(1) << 40, "rotate the log file at this size"),
	INT("log.keep", "5", 0, 100, "rotated log files to keep (file.1 … file.N)"),

	/* ---- redis ------------------------------------------------------- */
	STR("redis.url", "redis://127.0.0.1:6379/0",
	    "the Redis server: redis://[:password@]host:port/db or unix:///path[?db=N]"),
	INT("redis.timeout_ms", "2000", 10, 600000, "Redis connect and command timeout"),

	/* ---- pg ---------------------------------------------------------- */
	STR("pg.dsn", "host=127.0.0.1 dbname=livetap", "the PostgreSQL server: a libpq connection string or URI"),

	/* ---- processor --------------------------------------------------- */
	STR("processor.listen", "ipc://${state_dir}/processor.ipc", "NNG URL a processor binds (ipc:// or tcp://)"),
	STR("processor.metrics_listen", "", "HOST:PORT serving /metrics (empty: off)"),
	STR("processor.friso_dict", "/usr/share/friso/dict/UTF-8/",
	    "directory of the friso lexicon (friso.lex.ini and lex-*.lex; Debian's friso-dict)"),
	INT("processor.keywords_refresh_ms", "30000", 200, 3600000,
	    "how often keyword_rules is reloaded from PostgreSQL"),
	STR("processor.plugins_disable", "", "comma-separated processor plugins to leave out "
	    "(keywords, hotwords, userstats, checkin, fortune)"),

	/* ---- persister --------------------------------------------------- */
	STR("persister.listen", "ipc://${state_dir}/persister.ipc", "NNG URL a persister binds (ipc:// or tcp://)"),
	STR("persister.metrics_listen", "", "HOST:PORT serving /metrics (empty: off)"),
	INT("persister.batch_rows", "5000", 1, 65536, "commit to PostgreSQL at this many pending rows"),
	INT("persister.batch_ms", "200", 1, 60000, "or when the oldest pending batch is this old (ms)"),
	INT("persister.max_pending_bytes", "16777216", 65536, INT64_C(1) << 32,
	    "refuse (do not ack) new batches while this much is waiting for PostgreSQL"),
	INT("persister.partitions_ahead", "2", 0, 365, "daily live_messages partitions created ahead of today"),
	INT("persister.retention_days", "0", 0, 36500, "drop live_messages partitions older than this many days (0: keep)"),
	STR("persister.archive_dir", "", "archive partitions to gzip CSV here before dropping them (empty: no archive)"),
	INT("persister.hotwords_top", "20", 0, 1000, "top hot words per window snapshotted into hotword_statistics each minute (0: off)"),
	INT("persister.writers", "2", 1, 4, "PostgreSQL connections writing at once when a backlog builds up"),

	/* ---- fetcher ----------------------------------------------------- */
	LIST("fetcher.processors", "${processor.listen}", "comma-separated NNG URLs a fetcher dials (default: processor.listen)"),
	LIST("fetcher.persisters", "${persister.listen}", "comma-separated NNG URLs a fetcher dials (default: persister.listen)"),
	STR("fetcher.spool_dir", "${state_dir}/spool", "where unacknowledged batches wait on disk"),
	STR("fetcher.metrics_listen", "", "HOST:PORT serving /metrics (empty: off)"),
	INT("fetcher.heartbeat_s", "0", 0, 3600, "seconds between platform heartbeats (0: the platform's own, 30 for Bilibili)"),
	INT("fetcher.rx_timeout_s", "0", 0, 3600, "reconnect when nothing arrives for this long (0: heartbeat + 5 s)"),
	INT("fetcher.backoff_base_ms", "500", 1, 3600000, "first reconnect delay; doubles per failure, plus up to 20% jitter"),
	INT("fetcher.backoff_max_ms", "30000", 1, 3600000, "longest reconnect delay"),
	INT("fetcher.max_failures", "12", 0, 65534, "failed attempts in a row before the room goes to state error (0: never)"),
	INT("fetcher.status_interval_ms", "2000", 100, 600000, "how often live:{ROOM}:status is refreshed in Redis"),

	/* ---- supervisor (livetap-fetcher --supervise) --------------------- */
	INT("supervisor.lease_s", "30", 1, 86400, "a room's lease lasts this long unless renewed (renewed every lease_s/3)"),
	INT("supervisor.poll_s", "5", 1, 3600, "rescan the rooms table this often (besides LISTEN livetap_rooms)"),
	STR("supervisor.owner", "", "lease owner name (empty: hostname:pid)"),
	INT("supervisor.restart_base_ms", "1000", 1, 3600000, "first delay before restarting a dead child; doubles per death"),
	INT("supervisor.restart_max_ms", "60000", 1, 3600000, "longest delay before restarting a dead child"),
	INT("supervisor.stop_timeout_s", "10", 1, 600, "after SIGTERM, wait this long for a child before SIGKILL"),
	INT("supervisor.max_rooms", "0", 0, 1000000, "rooms one supervisor leases at most, to spread rooms over hosts (0: no limit)"),

	/* ---- api --------------------------------------------------------- */
	STR("api.listen", "127.0.0.1:8080", "HOST:PORT the API and dashboard listen on"),
	{"api.keys", LT_CFG_SECRET_LIST, NULL, NULL, 0, 0, "comma-separated API keys for scripted access"},
	{"api.read_keys", LT_CFG_SECRET_LIST, NULL, NULL, 0, 0, "comma-separated API keys that may only read"},
	SECRET("api.jwt_secret", "secret for login tokens (empty: random, kept in ${state_dir}/api-jwt.key)"),
	INT("api.token_ttl_s", "43200", 60, 31536000, "how long a login token is valid"),
	INT("api.workers", "4", 1, 64, "threads that run Redis and PostgreSQL queries for the API"),
	INT("api.rate_per_s", "50", 0, 1000000, "requests per second per client address and per key (0: no limit)"),
	INT("api.rate_burst", "200", 1, 1000000, "requests a client may make at once before the rate applies"),
	INT("api.cache_ms", "1000", 0, 60000, "how long a hot-words answer is served from memory (0: never)"),
	INT("api.ws_queue", "256", 1, 65536, "live-feed messages queued per slow client before the oldest is dropped"),
	STR("api.read_auth", "auto", "reads need a key or token: auto (unless api.listen is loopback), always (e.g. behind a proxy)"),
	SECRET("admin.password", "the admin login password (12 characters at least)"),

	/* ---- bilibili ---------------------------------------------------- */
	STR("bilibili.api_base", "https://api.live.bilibili.com", "Bilibili live HTTP API base URL"),
	STR("bilibili.ws_url", "wss://broadcastlv.chat.bilibili.com/sub", "Bilibili danmaku WebSocket URL"),
	SECRET("bilibili.cookie", "Bilibili login cookie (optional; anonymous users are masked without it)"),

	/* ---- douyin ------------------------------------------------------ */
	STR("douyin.web_base", "https://live.douyin.com", "Douyin live web base URL"),
	STR("douyin.ws_url", "wss://webcast5-ws-web-hl.douyin.com/webcast/im/push/v2/", "Douyin webcast WebSocket URL"),
	STR("douyin.signer", "native",
	    "push URL signer: native, or a command run with the X-MS-STUB as its last argument that prints the signature"),

	/* ---- kook -------------------------------------------------------- */
	STR("kook.api_base", "https://www.kookapp.cn/api/v3", "KOOK HTTP API base URL"),
	SECRET("kook.token", "KOOK bot token"),

	{NULL, 0, NULL, NULL, 0, 0, NULL},
};
/* clang-format on */
