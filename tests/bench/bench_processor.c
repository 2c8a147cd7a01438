/* SPDX-License-Identifier: MIT */
/*
 * bench_processor: how fast lt_processor_apply gets realistic live chat into
 * the real Redis (LIVETAP_REDIS_URL; exit 77 = skipped without it).
 *
 * Generates a deterministic stream of Chinese chat, gifts, likes and entries
 * from 2,000 users in 4 rooms, in batches of --batch messages (default 1000,
 * as a fetcher sends under load), applies --messages of them (default
 * 200,000), then prints messages/s, batch latency percentiles, segmenter-only
 * throughput and the peak RSS, headed by Redis's persistence setting and the
 * load average before and after (the machine may be shared: then the CPU
 * seconds say more than the wall clock). Bounded to a few seconds of CPU.
 *
 *   bench_processor [--messages N] [--batch N] [--merge N] [--rooms 1-4] [--disable PLUGIN,...]
 *                   [--now MS]
 *
 * --merge N applies N batches per lt_processor_apply_many call, as the
 * processor does with the batches already queued on the bus under load.
 * --now MS fixes the clock (message ids, timestamps, the processor's now;
 * default: the wall clock), so that two runs against fresh Redis servers
 * write the same data set: how a change to the plan or apply.lua is checked
 * to change nothing (compare the servers' keys, values and TTLs), and how
 * instruction counts (callgrind on redis-server) stay comparable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "common/buf.h"
#include "common/redisconn.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/wire.h"
#include "processor/processor.h"
#include "processor/segment.h"

static const char *const phrases[] = {
	"主播太强了", "哈哈哈哈哈", "666666", "破防了", "前方高能", "yyds", "这波操作可以", "下次一定",
	"awsl", "笑死我了", "泪目", "爷青回", "蚌埠住了", "有一说一", "绝绝子", "好家伙", "芜湖起飞",
	"2333333", "kksk", "主播晚上好", "今天的歌真好听", "这个游戏叫什么名字", "来了来了", "[doge]",
	"[笑哭]", "谢谢老板", "老板大气", "弹幕护体", "关注了", "一键三连", "这也太离谱了吧", "真香",
};
#define NPHRASES (sizeof(phrases) / sizeof(phrases[0]))

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* Redis's own CPU seconds (user + sys) from INFO cpu; -1 on failure. */
static double redis_cpu(const char *url)
{
	redisContext *c = NULL;
	redisReply *r;
	double v = -1;
	const char *u, *sy;

	if (lt_redis_connect(url, 2000, &c, NULL) != LT_OK)
		return -1;
	r = redisCommand(c, "INFO cpu");
	if (r && r->type == REDIS_REPLY_STRING && (u = strstr(r->str, "used_cpu_user:")) &&
	    (sy = strstr(r->str, "used_cpu_sys:")))
		v = atof(u + 14) + atof(sy + 13);
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return v;
}

/* Redis's persistence setting ("appendonly yes, appendfsync everysec"), for
 * the figures' heading: AOF costs Redis CPU. */
static void redis_persistence(const char *url, char *out, size_t cap)
{
	redisContext *c = NULL;
	redisReply *a = NULL, *f = NULL;

	snprintf(out, cap, "unknown");
	if (lt_redis_connect(url, 2000, &c, NULL) != LT_OK)
		return;
	a = redisCommand(c, "CONFIG GET appendonly");
	f = redisCommand(c, "CONFIG GET appendfsync");
	if (a && a->type == REDIS_REPLY_ARRAY && a->elements == 2 && f && f->type == REDIS_REPLY_ARRAY &&
	    f->elements == 2)
		snprintf(out, cap, "appendonly %s, appendfsync %s", a->element[1]->str, f->element[1]->str);
	if (a)
		freeReplyObject(a);
	if (f)
		freeReplyObject(f);
	redisFree(c);
}

/* The 1, 5 and 15 minute load averages, as text: on a shared machine they
 * say how much the figures are worth. */
static void loadavg(char *out, size_t cap)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double l1, l5, l15;

	snprintf(out, cap, "unknown");
	if (f && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
		snprintf(out, cap, "%.2f %.2f %.2f", l1, l5, l15);
	if (f)
		fclose(f);
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Fill one batch of n messages for room r, sequence seq. */
static void make_batch(struct lt_buf *b, int n, int room, uint64_t seq, int64_t now, long *msgno)
{
	static const char *const rooms[] = {"9001", "9002", "9003", "9004"};
	char text[256], id[32], uid[16], name[32];

	lt_wire_batch_begin(b, LT_WIRE_KIND_DATA, 0, "bench", seq);
	for (int i = 0; i < n; i++) {
		struct lt_msg m = {0};
		uint32_t r = next_rand();
		int k = 1 + (int)(r % 3);
		text[0] = '\0';
		for (int j = 0; j < k; j++)
			strncat(text, phrases[next_rand() % NPHRASES], sizeof(text) - strlen(text) - 1);
		snprintf(id, sizeof(id), "bench-%ld-%ld", (long)now, (*msgno)++);
		snprintf(uid, sizeof(uid), "%u", 10000 + next_rand() % 2000);
		snprintf(name, sizeof(name), "观众%s", uid);
		m.platform = LT_PLATFORM_BILIBILI;
		m.ts = now - (int64_t)(r % 2000);
		m.room = lt_str_c(rooms[room]);
		m.msg_id = lt_str_c(id);
		m.user_id = lt_str_c(uid);
		m.user_name = lt_str_c(name);
		switch (r % 20) {
		case 0:
			m.type = LT_MSG_GIFT;
			m.count = 1 + r % 10;
			m.value = 100 * m.count;
			m.content = lt_str_c("辣条");
			break;
		case 1:
			m.type = LT_MSG_LIKE;
			m.count = 1 + r % 5;
			break;
		case 2:
			m.type = LT_MSG_ENTER;
			break;
		default:
			m.type = LT_MSG_CHAT;
			m.content = lt_str_c(text);
		}
		lt_wire_batch_add(b, &m);
	}
}

int main(int argc, char **argv)
{
	const char *url = getenv("LIVETAP_REDIS_URL");
	long total = 200000, bsize = 1000, msgno = 0, merge = 1, nrooms = 4;
	struct lt_processor_opts o = {0};
	struct lt_processor *p = NULL;
	struct lt_error e = {0};
	struct lt_buf *bufs;
	struct lt_processor_stats st;
	struct rusage ru;
	int64_t *lat, t0, t1, now = lt_clock_wall_ms();
	double rcpu0, rcpu1, pcpu0, pcpu1;
	char load0[64], load1[64], pers[96];
	long nb;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--messages") == 0)
			total = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--batch") == 0)
			bsize = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--rooms") == 0)
			nrooms = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--merge") == 0)
			merge = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--disable") == 0)
			o.disable = argv[i + 1];
		else if (strcmp(argv[i], "--now") == 0)
			now = atoll(argv[i + 1]);
	}
	if (!url || !*url) {
		fprintf(stderr, "bench_processor: LIVETAP_REDIS_URL not set; skipped\n");
		return 77;
	}
	if (bsize < 1 || bsize > 60000 || total < bsize) {
		fprintf(stderr, "bench_processor: bad --messages/--batch\n");
		return 2;
	}
	lt_log_init("bench_processor", LT_LOG_WARN);
	o.redis_url = url;
	o.redis_timeout_ms = 10000;
	if (lt_processor_open(&o, &p, &e) != LT_OK) {
		fprintf(stderr, "bench_processor: %s\n", e.message);
		return 1;
	}
	nb = total / bsize;
	lat = calloc((size_t)nb, sizeof(*lat));
	if (!lat)
		return 1;

	/* segmenter alone, on the same kind of text */
	{
		struct lt_segment *s = NULL;
		struct lt_segment_words *w = malloc(sizeof(*w));
		long words = 0, n = 50000;
		char text[256];
		if (!w || lt_segment_open(NULL, &s, &e) != LT_OK)
			return 1;
		t0 = lt_clock_mono_us();
		for (long i = 0; i < n; i++) {
			text[0] = '\0';
			for (int j = 0; j < 2; j++)
				strncat(text, phrases[next_rand() % NPHRASES], sizeof(text) - strlen(text) - 1);
			lt_segment_words(s, text, strlen(text), w);
			words += w->n;
		}
		t1 = lt_clock_mono_us();
		printf("segment: %ld texts, %.2f words/text, %.0f texts/s\n", n, (double)words / (double)n,
		       (double)n * 1e6 / (double)(t1 - t0));
		lt_segment_close(s);
		free(w);
	}

	redis_persistence(url, pers, sizeof(pers));
	loadavg(load0, sizeof(load0));
	rcpu0 = redis_cpu(url);
	pcpu0 = self_cpu();
	t0 = lt_clock_mono_us();
	if (merge < 1 || merge > 64)
		merge = 1;
	if (nrooms < 1 || nrooms > 4)
		nrooms = 4;
	bufs = calloc((size_t)merge, sizeof(*bufs));
	if (!bufs)
		return 1;
	for (long i = 0; i < nb; i += merge) {
		struct lt_processor_input in[64];
		int rcs[64], k, rc;
		int64_t a;
		for (k = 0; k < merge && i + k < nb; k++) {
			make_batch(&bufs[k], (int)bsize, (int)((i + k) % nrooms), (uint64_t)(i + k) + 1, now, &msgno);
			in[k].data = bufs[k].data;
			in[k].len = bufs[k].len;
		}
		a = lt_clock_mono_us();
		rc = lt_processor_apply_many(p, in, k, now, rcs);
		for (int j = 0; j < k; j++)
			lat[i + j] = lt_clock_mono_us() - a;
		if (rc != LT_OK) {
			fprintf(stderr, "bench_processor: apply failed: %s\n", lt_strerror(rc));
			return 1;
		}
	}
	t1 = lt_clock_mono_us();
	rcpu1 = redis_cpu(url);
	pcpu1 = self_cpu();
	loadavg(load1, sizeof(load1));
	lt_processor_stats(p, &st);
	qsort(lat, (size_t)nb, sizeof(*lat), cmp_i64);
	getrusage(RUSAGE_SELF, &ru);
	printf("redis: %s; load average %s before, %s after (%ld CPUs)\n", pers, load0, load1,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("apply: %ld messages in %ld batches of %ld: %.0f messages/s (incl. generating the batches)\n",
	       nb * bsize, nb, bsize, (double)(nb * bsize) * 1e6 / (double)(t1 - t0));
	printf("apply latency per call (%ld batch(es) per call): p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", merge, (double)lat[nb / 2] / 1000.0,
	       (double)lat[(nb * 99) / 100] / 1000.0, (double)lat[nb - 1] / 1000.0);
	/* on a shared machine wall time mostly measures the neighbours: CPU
	 * seconds say what each side could do with a core of its own */
	printf("cpu: redis %.2f s (%.0f messages per redis-cpu-second), processor %.2f s (%.0f messages per "
	       "cpu-second, incl. generating)\n",
	       rcpu1 - rcpu0, (double)(nb * bsize) / (rcpu1 - rcpu0), pcpu1 - pcpu0,
	       (double)(nb * bsize) / (pcpu1 - pcpu0));
	printf("inside the script (ms): markers+stream+publish %.0f, tick %.0f, ops %.0f, min/max/set %.0f, trend %.0f\n",
	       st.script_us[0] / 1e3, st.script_us[1] / 1e3, st.script_us[2] / 1e3, st.script_us[3] / 1e3,
	       st.script_us[4] / 1e3);
	printf("fresh %llu, duplicates %llu; peak RSS %.1f MB\n", (unsigned long long)st.fresh,
	       (unsigned long long)st.duplicates, (double)ru.ru_maxrss / 1024.0);

	free(lat);
	for (long k = 0; k < merge; k++)
		lt_buf_free(&bufs[k]);
	free(bufs);
	lt_processor_close(p);
	return st.fresh == (uint64_t)(nb * bsize) ? 0 : 1;
}
