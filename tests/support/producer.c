/* SPDX-License-Identifier: MIT */
/*
 * lt-producer: a test producer. It opens a delivery (common/delivery.h) like a
 * fetcher does and pushes N synthetic chat, gift and like messages from K
 * users of one room at a given rate, with a planted word in every Nth chat,
 * then waits until both consumer kinds have acknowledged everything and
 * prints one JSON summary line on stdout:
 *
 *   {"source":…,"sent":N,"chats":…,"gifts":…,"likes":…,"plant":"w",
 *    "planted":P,"drained":true,…,"user_messages":{"u0":n,…}}
 *
 * user_messages counts chats per user, the same thing Redis counts in
 * live:{ROOM}:user:UID `messages`. Message i (from --offset on) is a pure
 * function of (seed, source, room, i, ts_base): its msg_id is
 * "SOURCE/i", so a second run with the same flags (and --ts-base) resends
 * identical messages, and producers with different --offset never overlap.
 * The pipeline's fault test and benchmarks drive the system with it.
 *
 * Exit status: 0 when drained, 1 when the drain timed out, 2 on bad flags or
 * a delivery that cannot be opened.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/delivery.h"
#include "common/msg.h"
#include "lt_config.h"

#define MAX_URLS  16
#define MAX_USERS 10000000

struct popts {
	const char *source;
	const char *room;
	int platform;
	long count;
	double rate; /* messages/s; 0 = as fast as accepted */
	long users;
	const char *plant;
	long plant_every;
	const char *procs[MAX_URLS];
	int nprocs;
	const char *pers[MAX_URLS];
	int npers;
	const char *spool;
	uint64_t seed;
	long offset;
	int64_t ts_base;
	int drain_ms;
	int batch_max;
	int linger_ms;
	int linger_max_ms;
	int ack_timeout_ms;
};

static const char *const words[] = {
    "主播", "今天", "好厉害", "哈哈哈", "来了", "晚上好",   "这个", "操作", "真的",   "可以",
    "弹幕", "礼物", "谢谢",   "加油",	"牛",	"下次一定", "破防", "awsl", "学到了", "好听",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
	struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: lt-producer --processors URL[,URL] --persisters URL[,URL] [options]\n"
		   "  --source ID        source id (default PLATFORM:ROOM#OFFSET)\n"
		   "  --platform NAME    bilibili|douyin|kook (default bilibili)\n"
		   "  --room ID          room id (default 1)\n"
		   "  --count N          messages to send (default 1000)\n"
		   "  --rate X           messages per second, 0 = as fast as accepted (default 0)\n"
		   "  --users K          distinct users (default 100)\n"
		   "  --plant WORD       a word to put in some chats (default none)\n"
		   "  --plant-every N    put it in chat i when i %% N == 0 (default 10)\n"
		   "  --spool DIR        spool directory (default: memory only)\n"
		   "  --seed S           content seed (default 1)\n"
		   "  --offset I         index of the first message (default 0)\n"
		   "  --ts-base MS       ts of message 0 (default now; printed in the summary)\n"
		   "  --drain-timeout MS wait this long for acks at the end (default 60000)\n"
		   "  --batch-max N, --linger-ms N, --linger-max-ms N, --ack-timeout-ms N\n"
		   "                     delivery tuning (common/delivery.h)\n"
		   "  --help, --version\n");
}

static int split_urls(char *s, const char **out, int *n)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (*n >= MAX_URLS)
			return -1;
		out[(*n)++] = tok;
	}
	return 0;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int parse_args(int argc, char **argv, struct popts *o)
{
	enum {
		O_SOURCE = 256,
		O_ROOM,
		O_PLATFORM,
		O_COUNT,
		O_RATE,
		O_USERS,
		O_PLANT,
		O_PLANT_EVERY,
		O_PROCS,
		O_PERS,
		O_SPOOL,
		O_SEED,
		O_OFFSET,
		O_TS_BASE,
		O_DRAIN,
		O_BATCH,
		O_LINGER,
		O_LINGER_MAX,
		O_ACKTO,
		O_HELP,
		O_VERSION
	};
	static const struct option lo[] = {
	    {"source", required_argument, NULL, O_SOURCE},
	    {"room", required_argument, NULL, O_ROOM},
	    {"platform", required_argument, NULL, O_PLATFORM},
	    {"count", required_argument, NULL, O_COUNT},
	    {"rate", required_argument, NULL, O_RATE},
	    {"users", required_argument, NULL, O_USERS},
	    {"plant", required_argument, NULL, O_PLANT},
	    {"plant-every", required_argument, NULL, O_PLANT_EVERY},
	    {"processors", required_argument, NULL, O_PROCS},
	    {"persisters", required_argument, NULL, O_PERS},
	    {"spool", required_argument, NULL, O_SPOOL},
	    {"seed", required_argument, NULL, O_SEED},
	    {"offset", required_argument, NULL, O_OFFSET},
	    {"ts-base", required_argument, NULL, O_TS_BASE},
	    {"drain-timeout", required_argument, NULL, O_DRAIN},
	    {"batch-max", required_argument, NULL, O_BATCH},
	    {"linger-ms", required_argument, NULL, O_LINGER},
	    {"linger-max-ms", required_argument, NULL, O_LINGER_MAX},
	    {"ack-timeout-ms", required_argument, NULL, O_ACKTO},
	    {"help", no_argument, NULL, O_HELP},
	    {"version", no_argument, NULL, O_VERSION},
	    {NULL, 0, NULL, 0},
	};
	*o = (struct popts){.room = "1",
			    .platform = LT_PLATFORM_BILIBILI,
			    .count = 1000,
			    .users = 100,
			    .plant_every = 10,
			    .seed = 1,
			    .ts_base = -1,
			    .drain_ms = 60000};
	long v;
	int c, li = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, &li)) != -1) {
		switch (c) {
		case O_SOURCE:
			o->source = optarg;
			break;
		case O_ROOM:
			o->room = optarg;
			break;
		case O_PLATFORM:
			o->platform = lt_platform_parse(optarg, strlen(optarg));
			if (o->platform == LT_PLATFORM_UNKNOWN)
				goto bad;
			break;
		case O_COUNT:
			if (!parse_long(optarg, 0, 1000000000L, &o->count))
				goto bad;
			break;
		case O_RATE: {
			char *end;
			o->rate = strtod(optarg, &end);
			if (*end || end == optarg || o->rate < 0)
				goto bad;
			break;
		}
		case O_USERS:
			if (!parse_long(optarg, 1, MAX_USERS, &o->users))
				goto bad;
			break;
		case O_PLANT:
			o->plant = optarg;
			break;
		case O_PLANT_EVERY:
			if (!parse_long(optarg, 1, 1000000000L, &o->plant_every))
				goto bad;
			break;
		case O_PROCS:
			if (split_urls(optarg, o->procs, &o->nprocs) != 0)
				goto bad;
			break;
		case O_PERS:
			if (split_urls(optarg, o->pers, &o->npers) != 0)
				goto bad;
			break;
		case O_SPOOL:
			o->spool = optarg;
			break;
		case O_SEED:
			if (!parse_long(optarg, 0, INT64_MAX, &v))
				goto bad;
			o->seed = (uint64_t)v;
			break;
		case O_OFFSET:
			if (!parse_long(optarg, 0, 1000000000000L, &o->offset))
				goto bad;
			break;
		case O_TS_BASE:
			if (!parse_long(optarg, 0, INT64_MAX, &v))
				goto bad;
			o->ts_base = v;
			break;
		case O_DRAIN:
			if (!parse_long(optarg, 0, 86400000L, &v))
				goto bad;
			o->drain_ms = (int)v;
			break;
		case O_BATCH:
			if (!parse_long(optarg, 1, 65536, &v))
				goto bad;
			o->batch_max = (int)v;
			break;
		case O_LINGER:
			if (!parse_long(optarg, 1, 10000, &v))
				goto bad;
			o->linger_ms = (int)v;
			break;
		case O_LINGER_MAX:
			if (!parse_long(optarg, 1, 10000, &v))
				goto bad;
			o->linger_max_ms = (int)v;
			break;
		case O_ACKTO:
			if (!parse_long(optarg, 1, 3600000, &v))
				goto bad;
			o->ack_timeout_ms = (int)v;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		case O_VERSION:
			printf("lt-producer %s\n", LT_VERSION);
			exit(0);
		default:
			fprintf(stderr, "lt-producer: unknown flag or missing value: %s (see --help)\n",
				argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lt-producer: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	if (o->nprocs == 0 && o->npers == 0) {
		fprintf(stderr, "lt-producer: give --processors and/or --persisters\n");
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "lt-producer: bad value for --%s: %s\n", lo[li].name, optarg);
	return -1;
}

/* Build message i; the strings live in the caller's buffers. Returns true if
 * the planted word is in it. */
static bool make_msg(const struct popts *o, long i, struct lt_msg *m, char *id, size_t idcap, char *uid,
		     char *uname, char *text, size_t textcap, char *extra, size_t extracap, long *user)
{
	uint64_t h = splitmix(o->seed ^ splitmix((uint64_t)i));
	long u = (long)(h % (uint64_t)o->users);
	int kind = (int)((h >> 32) % 10); /* 0..7 chat, 8 gift, 9 like */
	bool planted = false;
	memset(m, 0, sizeof(*m));
	m->platform = (uint8_t)o->platform;
	m->room = lt_str_c(o->room);
	m->ts = o->ts_base +
		(o->rate > 0 ? (int64_t)((double)(i - o->offset) * 1000.0 / o->rate) : (i - o->offset));
	snprintf(id, idcap, "%s/%ld", o->source, i);
	snprintf(uid, 32, "u%ld", u);
	snprintf(uname, 64, "用户%ld", u);
	m->msg_id = lt_str_c(id);
	m->user_id = lt_str_c(uid);
	m->user_name = lt_str_c(uname);
	*user = u;
	if (kind < 8) {
		m->type = LT_MSG_CHAT;
		size_t k = 0;
		int nw = 1 + (int)((h >> 8) % 4);
		text[0] = '\0';
		for (int w = 0; w < nw; w++) {
			const char *wd = words[(h >> (12 + 4 * w)) % NWORDS];
			k += (size_t)snprintf(text + k, textcap - k, "%s%s", w ? " " : "", wd);
		}
		if (o->plant && i % o->plant_every == 0) {
			snprintf(text + k, textcap - k, " %s", o->plant);
			planted = true;
		}
		m->content = lt_str_c(text);
	} else if (kind == 8) {
		m->type = LT_MSG_GIFT;
		m->count = 1 + (int64_t)((h >> 16) % 5);
		m->value = m->count * 100;
		snprintf(text, textcap, "送出 小心心 x%" PRId64, m->count);
		snprintf(extra, extracap,
			 "{\"gift_name\":\"小心心\",\"count\":%" PRId64 ",\"value\":%" PRId64
			 ",\"currency\":\"silver\"}",
			 m->count, m->value);
		m->content = lt_str_c(text);
		m->extra = lt_str_c(extra);
	} else {
		m->type = LT_MSG_LIKE;
		m->count = 1 + (int64_t)((h >> 16) % 10);
	}
	return planted;
}

int main(int argc, char **argv)
{
	struct popts o;
	char srcbuf[80];
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (!o.source) {
		snprintf(srcbuf, sizeof(srcbuf), "%s:%s#%ld", lt_platform_name(o.platform), o.room, o.offset);
		o.source = srcbuf;
	}
	const char *checked[] = {o.source, o.room, o.plant ? o.plant : ""};
	for (size_t k = 0; k < sizeof(checked) / sizeof(checked[0]); k++) {
		for (const char *p = checked[k]; *p; p++) {
			if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
				fprintf(stderr,
					"lt-producer: --source, --room and --plant may not hold quotes, "
					"backslashes or control characters\n");
				return 2;
			}
		}
	}
	if (o.ts_base < 0)
		o.ts_base = wall_ms();
	long *per_user = calloc((size_t)o.users, sizeof(long));
	if (!per_user) {
		fprintf(stderr, "lt-producer: out of memory\n");
		return 2;
	}
	struct lt_delivery_opts dopts = {
	    .source_id = o.source,
	    .processors = o.procs,
	    .n_processors = o.nprocs,
	    .persisters = o.pers,
	    .n_persisters = o.npers,
	    .spool_dir = o.spool,
	    .batch_max = o.batch_max,
	    .linger_ms = o.linger_ms,
	    .linger_max_ms = o.linger_max_ms,
	    .ack_timeout_ms = o.ack_timeout_ms,
	};
	struct lt_delivery *d = NULL;
	struct lt_error e = {0};
	if (lt_delivery_open(&dopts, &d, &e) != LT_OK) {
		fprintf(stderr, "lt-producer: %s\n", e.message);
		free(per_user);
		return 2;
	}
	long chats = 0, gifts = 0, likes = 0, planted = 0, sent = 0, invalid = 0;
	uint64_t eagain = 0;
	int64_t t0 = mono_ns();
	for (long i = o.offset; i < o.offset + o.count; i++) {
		char id[128], uid[32], uname[64], text[256], extra[256];
		struct lt_msg m;
		long u;
		bool pl = make_msg(&o, i, &m, id, sizeof(id), uid, uname, text, sizeof(text), extra,
				   sizeof(extra), &u);
		if (o.rate > 0)
			sleep_until_ns(t0 + (int64_t)((double)(i - o.offset) * 1e9 / o.rate));
		int rc;
		while ((rc = lt_delivery_push(d, &m)) == LT_EAGAIN) {
			/* Backpressure: the spool is full. A test tool waits; a fetcher counts a drop. */
			eagain++;
			sleep_until_ns(mono_ns() + 1000000);
		}
		if (rc != LT_OK) {
			invalid++;
			continue;
		}
		sent++;
		if (m.type == LT_MSG_CHAT) {
			chats++;
			per_user[u]++;
			planted += pl;
		} else if (m.type == LT_MSG_GIFT) {
			gifts++;
		} else {
			likes++;
		}
	}
	int64_t t_push = mono_ns();
	int drc = lt_delivery_drain(d, o.drain_ms);
	int64_t t_end = mono_ns();
	struct lt_delivery_stats st;
	lt_delivery_stats(d, &st);
	double push_s = (double)(t_push - t0) / 1e9, total_s = (double)(t_end - t0) / 1e9;
	printf(
	    "{\"source\":\"%s\",\"platform\":\"%s\",\"room\":\"%s\",\"offset\":%ld,\"sent\":%ld,\"invalid\":%"
	    "ld,"
	    "\"chats\":%ld,\"gifts\":%ld,\"likes\":%ld,\"plant\":\"%s\",\"planted\":%ld,\"ts_base\":%" PRId64
	    ","
	    "\"drained\":%s,\"pending\":%" PRIu64 ",\"eagain\":%" PRIu64 ",\"push_seconds\":%.3f,"
	    "\"total_seconds\":%.3f,\"rate\":%.0f,\"delivery\":{\"batches\":%" PRIu64 ",\"sent\":%" PRIu64
	    ",\"resent\":%" PRIu64 ",\"acked_records\":%" PRIu64 ",\"recovered_records\":%" PRIu64
	    ",\"spool_corrupt\":%" PRIu64 ",\"send_failed\":%" PRIu64 ",\"redials\":%" PRIu64
	    ",\"silent_redials\":%" PRIu64 "},\"user_messages\":{",
	    o.source, lt_platform_name(o.platform), o.room, o.offset, sent, invalid, chats, gifts, likes,
	    o.plant ? o.plant : "", planted, o.ts_base, drc == LT_OK ? "true" : "false", st.pending_records,
	    eagain, push_s, total_s, total_s > 0 ? (double)sent / total_s : 0.0, st.batches_sealed, st.sent,
	    st.resent, st.acked_records, st.recovered_records, st.spool_corrupt, st.send_failed, st.redials,
	    st.silent_redials);
	bool first = true;
	for (long u = 0; u < o.users; u++) {
		if (!per_user[u])
			continue;
		printf("%s\"u%ld\":%ld", first ? "" : ",", u, per_user[u]);
		first = false;
	}
	printf("}}\n");
	fflush(stdout);
	lt_delivery_close(d);
	free(per_user);
	return drc == LT_OK ? 0 : 1;
}
