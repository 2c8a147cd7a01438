/* SPDX-License-Identifier: MIT */
/*
 * bench_wire: records per second through the wire codec and the JSON
 * encoder, on batches of 64 typical chat records (about 60 bytes of Chinese
 * text each, the shape the bus sends).
 *
 *   encode: lt_wire_batch_begin + 64 × lt_wire_batch_add
 *   decode: lt_wire_batch_decode + 64 × lt_wire_iter_next
 *   json:   lt_json_msg per record (what the processor does per message)
 *
 * Each phase runs for about LT_BENCH_SECONDS (default 0.5) of this thread's
 * CPU time and prints one line "bench_wire PHASE N records/s" per CPU
 * second, i.e. per core, whatever else the machine is running. Run: meson test -C build
 * --benchmark (or the binary directly). The numbers are checked for sanity
 * only (the run fails if a decoded batch does not match), not for speed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/json.h"
#include "common/wire.h"

#define BATCH 64

/* CPU time of this thread in microseconds: the figure is per core, and
 * other processes sharing the machine do not dilute it. */
static int64_t cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double bench_seconds(void)
{
	const char *s = getenv("LT_BENCH_SECONDS");
	double v = s ? atof(s) : 0.5;
	return v > 0 && v < 60 ? v : 0.5;
}

static void fill(struct lt_msg *m, int i, char ids[][24], char users[][16])
{
	/* 20 CJK characters: 60 bytes of content. */
	static const char content[] = "\xe4\xbb\x8a\xe5\xa4\xa9\xe7\x9a\x84\xe7\x9b\xb4\xe6\x92\xad\xe7\x9c\x9f"
				      "\xe5\xa5\xbd\xe7\x9c\x8b\xe4\xb8\xbb\xe6\x92\xad\xe5\x8a\xa0\xe6\xb2\xb9"
				      "\xe5\x93\x88\xe5\x93\x88\xe5\x93\x88\xe5\x93\x88\x36\x36\x36\x36\x36\x36"
				      "\xe7\xac\x91\xe6\xad\xbb";
	memset(m, 0, sizeof(*m));
	m->platform = LT_PLATFORM_BILIBILI;
	m->type = LT_MSG_CHAT;
	m->ts = 1732212345123 + i;
	m->room = LT_STR("21452505");
	snprintf(ids[i], 24, "%016" PRIx64, (uint64_t)0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1));
	m->msg_id = lt_str_c(ids[i]);
	snprintf(users[i], 16, "%d", 100000 + i * 37);
	m->user_id = lt_str_c(users[i]);
	m->user_name = LT_STR("\xe8\xa7\x82\xe4\xbc\x97\xe5\xb0\x8f\xe6\x98\x8e");
	m->content = (struct lt_str){content, (uint32_t)sizeof(content) - 1};
}

static void report(const char *phase, uint64_t recs, int64_t us)
{
	printf("bench_wire %-6s %12.0f records/s  (%" PRIu64 " records in %.3f CPU s)\n", phase,
	       (double)recs * 1e6 / (double)(us ? us : 1), recs, (double)us / 1e6);
}

int main(void)
{
	struct lt_msg ms[BATCH];
	char ids[BATCH][24], users[BATCH][16];
	for (int i = 0; i < BATCH; i++)
		fill(&ms[i], i, ids, users);
	int64_t budget = (int64_t)(bench_seconds() * 1e6);
	struct lt_buf b = LT_BUF_INIT;
	int rc = 1;

	/* encode */
	uint64_t recs = 0;
	int64_t t0 = cpu_us(), t;
	do {
		for (int k = 0; k < 64; k++) {
			lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "bilibili:21452505", recs);
			for (int i = 0; i < BATCH; i++)
				lt_wire_batch_add(&b, &ms[i]);
			recs += BATCH;
		}
	} while ((t = cpu_us() - t0) < budget);
	if (lt_buf_err(&b) || lt_wire_batch_count(&b) != BATCH) {
		fprintf(stderr, "bench_wire: encode failed\n");
		goto out;
	}
	report("encode", recs, t);
	printf("bench_wire batch of %d records: %zu bytes\n", BATCH, b.len);

	/* decode */
	recs = 0;
	uint64_t sum = 0;
	t0 = cpu_us();
	do {
		for (int k = 0; k < 64; k++) {
			struct lt_wire_batch wb;
			struct lt_wire_iter it;
			struct lt_msg d;
			if (lt_wire_batch_decode(b.data, b.len, &wb) != LT_OK) {
				fprintf(stderr, "bench_wire: decode failed\n");
				goto out;
			}
			lt_wire_iter_init(&it, &wb);
			while (lt_wire_iter_next(&it, &d) == LT_OK) {
				sum += d.content.len;
				recs++;
			}
		}
	} while ((t = cpu_us() - t0) < budget);
	if (sum != recs * ms[0].content.len) {
		fprintf(stderr, "bench_wire: decoded records do not match\n");
		goto out;
	}
	report("decode", recs, t);

	/* json */
	struct lt_buf j = LT_BUF_INIT;
	recs = 0;
	size_t bytes = 0;
	t0 = cpu_us();
	do {
		for (int k = 0; k < 64; k++) {
			for (int i = 0; i < BATCH; i++) {
				lt_buf_reset(&j);
				lt_json_msg(&j, &ms[i]);
				bytes += j.len;
			}
			recs += BATCH;
		}
	} while ((t = cpu_us() - t0) < budget);
	if (lt_buf_err(&j)) {
		lt_buf_free(&j);
		goto out;
	}
	report("json", recs, t);
	printf("bench_wire json of one record: %zu bytes\n", bytes / (recs ? recs : 1));
	lt_buf_free(&j);
	rc = 0;
out:
	lt_buf_free(&b);
	return rc;
}
