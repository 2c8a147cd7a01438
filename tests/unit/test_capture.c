/* SPDX-License-Identifier: MIT */
/*
 * test_capture: fetcher/capture.c (the --record / --replay file format) and
 * fetcher/replay.c (--replay --stdout).
 *
 * Golden bytes of a record, the in-memory parser on empty, truncated and
 * oversize input, the file writer (append across reopen) and reader (clean
 * end, a record cut short, an oversize length), and replays of a capture of
 * brotli batches: one JSON line per message, the same bytes on a second run
 * (synthetic ids are stable), a truncated tail tolerated, a missing file
 * reported; and replays pushed into the pipeline (common/delivery.h) to two
 * test consumers that ack what they receive (every message arrives, the
 * replay returns once all is acked) and to nobody (the drain times out and
 * says how many records are left).
 */
#include <brotli/encode.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/bus.h"
#include "common/clock.h"
#include "common/delivery.h"
#include "common/wire.h"
#include "fetcher/bilibili.h"
#include "fetcher/capture.h"
#include "fetcher/platform.h"
#include "fetcher/replay.h"
#include "tests/support/testsupport.h"

START_TEST(golden_record)
{
	struct lt_buf b = LT_BUF_INIT;
	lt_buf_init(&b, 0);
	lt_capture_append(&b, 0x0102030405060708LL, "abc", 3);
	static const uint8_t want[] = {8, 7, 6, 5, 4, 3, 2, 1, 3, 0, 0, 0, 'a', 'b', 'c'};
	ck_assert_int_eq(b.len, sizeof(want));
	ck_assert_int_eq(memcmp(b.data, want, sizeof(want)), 0);

	size_t off = 0, n;
	int64_t t;
	const uint8_t *f;
	ck_assert_int_eq(lt_capture_parse(b.data, b.len, &off, &t, &f, &n), LT_OK);
	ck_assert_int_eq(t, 0x0102030405060708LL);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(memcmp(f, "abc", 3), 0);
	ck_assert_int_eq(off, b.len);
	ck_assert_int_eq(lt_capture_parse(b.data, b.len, &off, &t, &f, &n), LT_EEOF);
	lt_buf_free(&b);
}
END_TEST

START_TEST(parse_bad)
{
	struct lt_buf b = LT_BUF_INIT;
	size_t off = 0, n;
	int64_t t;
	const uint8_t *f;
	lt_buf_init(&b, 0);
	ck_assert_int_eq(lt_capture_parse(NULL, 0, &off, &t, &f, &n), LT_EEOF);
	lt_capture_append(&b, 5, "", 0); /* an empty frame is a record */
	lt_capture_append(&b, 6, "xyz", 3);
	ck_assert_int_eq(lt_capture_parse(b.data, b.len, &off, &t, &f, &n), LT_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(t, 5);
	/* the second record cut anywhere is LT_EPROTO and leaves off alone */
	for (size_t cut = off + 1; cut < b.len; cut++) {
		size_t o = off;
		ck_assert_int_eq(lt_capture_parse(b.data, cut, &o, &t, &f, &n), LT_EPROTO);
		ck_assert_int_eq(o, off);
	}
	/* a length over the limit */
	uint8_t h[12] = {0};
	uint32_t big = LT_CAPTURE_FRAME_MAX + 1;
	memcpy(h + 8, &big, 4); /* the test machine is little-endian like the format */
	off = 0;
	ck_assert_int_eq(lt_capture_parse(h, sizeof(h), &off, &t, &f, &n), LT_EPROTO);
	lt_buf_reset(&b);
	lt_capture_append(&b, 1, "x", LT_CAPTURE_FRAME_MAX + 1);
	ck_assert_int_eq(lt_buf_err(&b), LT_ETOOBIG);
	lt_buf_free(&b);
}
END_TEST

static char *tmpfile_path(const char *name)
{
	char *dir = lt_test_tmpdir("capture");
	char *p = malloc(strlen(dir) + strlen(name) + 2);
	sprintf(p, "%s/%s", dir, name);
	free(dir);
	return p;
}

START_TEST(file_round_trip)
{
	char *path = tmpfile_path("a.cap");
	struct lt_capture_writer *w;
	struct lt_capture_reader *r;
	int64_t t;
	const uint8_t *f;
	size_t n;

	ck_assert_int_eq(lt_capture_writer_open(path, &w), LT_OK);
	ck_assert_int_eq(lt_capture_write(w, 100, "one", 3), LT_OK);
	ck_assert_int_eq(lt_capture_write(w, 101, "two!", 4), LT_OK);
	ck_assert_int_eq(lt_capture_write(w, 1, "x", LT_CAPTURE_FRAME_MAX + 1), LT_ETOOBIG);
	ck_assert_int_eq(lt_capture_writer_close(w), LT_OK);
	ck_assert_int_eq(lt_capture_writer_open(path, &w), LT_OK); /* appends */
	ck_assert_int_eq(lt_capture_write(w, 102, "three", 5), LT_OK);
	ck_assert_int_eq(lt_capture_writer_flush(w), LT_OK);
	ck_assert_int_eq(lt_capture_writer_close(w), LT_OK);
	ck_assert_int_eq(lt_capture_writer_close(NULL), LT_OK);

	ck_assert_int_eq(lt_capture_reader_open(path, &r), LT_OK);
	const char *want[] = {"one", "two!", "three"};
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(lt_capture_next(r, &t, &f, &n), LT_OK);
		ck_assert_int_eq(t, 100 + i);
		ck_assert_int_eq(n, strlen(want[i]));
		ck_assert_int_eq(memcmp(f, want[i], n), 0);
	}
	ck_assert_int_eq(lt_capture_next(r, &t, &f, &n), LT_EEOF);
	ck_assert_int_eq(lt_capture_next(r, &t, &f, &n), LT_EEOF);
	ck_assert_int_eq(lt_capture_reader_offset(r), 3 * 12 + 12);
	lt_capture_reader_close(r);

	/* cut short by one byte: two records, then LT_EPROTO */
	ck_assert_int_eq(truncate(path, 3 * 12 + 12 - 1), 0);
	ck_assert_int_eq(lt_capture_reader_open(path, &r), LT_OK);
	ck_assert_int_eq(lt_capture_next(r, &t, &f, &n), LT_OK);
	ck_assert_int_eq(lt_capture_next(r, &t, &f, &n), LT_OK);
	ck_assert_int_eq(lt_capture_next(r, &t, &f, &n), LT_EPROTO);
	lt_capture_reader_close(r);

	/* an oversize length */
	FILE *fp = fopen(path, "wb");
	uint8_t h[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
	fwrite(h, 1, 12, fp);
	fclose(fp);
	ck_assert_int_eq(lt_capture_reader_open(path, &r), LT_OK);
	ck_assert_int_eq(lt_capture_next(r, &t, &f, &n), LT_ETOOBIG);
	lt_capture_reader_close(r);

	ck_assert_int_eq(lt_capture_reader_open("/nonexistent/dir/x.cap", &r), LT_EIO);
	ck_assert_int_eq(lt_capture_writer_open("/nonexistent/dir/x.cap", &w), LT_EIO);
	free(path);
}
END_TEST

/* A capture of `frames` brotli frames of `per` chat messages each (ids
 * synthetic: no id_str), plus a heartbeat reply. */
static void make_capture(const char *path, int frames, int per)
{
	struct lt_buf file = LT_BUF_INIT, inner = LT_BUF_INIT, pkt = LT_BUF_INIT;
	char body[512];
	lt_buf_init(&file, 0);
	lt_buf_init(&inner, 0);
	lt_buf_init(&pkt, 0);
	for (int fr = 0; fr < frames; fr++) {
		lt_buf_reset(&inner);
		for (int i = 0; i < per; i++) {
			int k = fr * per + i;
			snprintf(body, sizeof(body),
			         "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,1,%d,%d,0,\"\",0,0,0,\"\",0,\"{}\",\"{}\","
			         "{\"extra\":\"{}\"}],\"msg %d\",[%d,\"user%d\"],[],[0]]}",
			         1700000000 + k, k, k, 1000 + k % 7, k % 7);
			lt_bili_pack(&inner, 0, 5, 0, body, strlen(body));
		}
		size_t n = BrotliEncoderMaxCompressedSize(inner.len);
		uint8_t *z = malloc(n);
		ck_assert(BrotliEncoderCompress(5, 22, BROTLI_MODE_GENERIC, inner.len, inner.data, &n, z));
		lt_buf_reset(&pkt);
		lt_bili_pack(&pkt, 3, 5, 0, z, n);
		free(z);
		lt_capture_append(&file, 1732212345000LL + fr * 10, pkt.data, pkt.len);
	}
	static const uint8_t hb[] = {0, 0, 0, 20, 0, 16, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, '{', '}'};
	lt_capture_append(&file, 1732212346000LL, hb, sizeof(hb));
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fwrite(file.data, 1, file.len, f), file.len);
	fclose(f);
	lt_buf_free(&file);
	lt_buf_free(&inner);
	lt_buf_free(&pkt);
}

static char *replay_to_string(const char *cap, struct lt_replay_stats *st, int want_rc)
{
	struct lt_platform_conf conf = {.room = "21452505", .skip_bootstrap = true};
	char *out = NULL;
	size_t outlen = 0;
	FILE *mem = open_memstream(&out, &outlen);
	struct lt_replay_opts o = {.path = cap, .ops = &lt_platform_bilibili, .conf = &conf, .out = mem};
	struct lt_error e = {0};
	ck_assert_int_eq(lt_replay_run(&o, st, &e), want_rc);
	fclose(mem);
	return out;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

START_TEST(replay_stdout)
{
	char *path = tmpfile_path("r.cap");
	struct lt_replay_stats st;
	make_capture(path, 30, 50);

	char *a = replay_to_string(path, &st, LT_OK);
	ck_assert_int_eq(st.frames, 31);
	ck_assert_int_eq(st.messages, 1500);
	ck_assert_int_eq(st.bad_frames, 0);
	ck_assert(!st.truncated);
	ck_assert_int_eq(count_lines(a), 1500);
	ck_assert_ptr_nonnull(strstr(a, "\"content\":\"msg 1499\""));
	/* a second replay yields the same bytes, ids included */
	char *b = replay_to_string(path, &st, LT_OK);
	ck_assert_str_eq(a, b);
	free(b);

	/* a capture whose recorder died mid-record: what was whole is replayed */
	FILE *f = fopen(path, "ab");
	fwrite("\1\2\3\4\5", 1, 5, f);
	fclose(f);
	b = replay_to_string(path, &st, LT_OK);
	ck_assert(st.truncated);
	ck_assert_str_eq(a, b);
	free(b);
	free(a);

	a = replay_to_string("/nonexistent/x.cap", &st, LT_EIO);
	free(a);
	free(path);
}
END_TEST


/* A consumer thread: receive batches, count distinct records by msg_id
 * would need a set; count records and remember the highest seq, ack all. */
struct consumer {
	struct lt_bus_consumer *bus;
	atomic_int stop;
	atomic_long records;
	atomic_long batches;
};

static void *consume(void *arg)
{
	struct consumer *k = arg;
	while (!atomic_load(&k->stop)) {
		struct lt_bus_batch b;
		if (lt_bus_consumer_recv(k->bus, 50, &b) != LT_OK)
			continue;
		struct lt_wire_batch wb;
		if (lt_wire_batch_decode(b.data, b.len, &wb) == LT_OK) {
			struct lt_wire_iter it;
			struct lt_msg m;
			long n = 0;
			lt_wire_iter_init(&it, &wb);
			while (lt_wire_iter_next(&it, &m) == LT_OK) {
				ck_assert_int_eq(m.platform, LT_PLATFORM_BILIBILI);
				n++;
			}
			atomic_fetch_add(&k->records, n);
			atomic_fetch_add(&k->batches, 1);
			lt_bus_consumer_ack(k->bus, wb.source_id, wb.seq);
		}
		lt_bus_batch_free(&b);
	}
	return NULL;
}

static int replay_to_pipeline(const char *cap, const char *proc, const char *pers, int timeout_ms,
                              struct lt_replay_stats *st)
{
	struct lt_platform_conf conf = {.room = "21452505", .skip_bootstrap = true};
	struct lt_delivery_opts d = {
		.source_id = "bilibili:21452505:replay",
		.processors = &proc,
		.n_processors = 1,
		.persisters = &pers,
		.n_persisters = 1,
		.ack_timeout_ms = 200,
	};
	struct lt_delivery *del = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_delivery_open(&d, &del, &e), LT_OK);
	struct lt_replay_opts o = {.path = cap, .ops = &lt_platform_bilibili, .conf = &conf, .delivery = del,
	                           .drain_timeout_ms = timeout_ms};
	int rc = lt_replay_run(&o, st, &e);
	lt_delivery_close(del);
	return rc;
}

START_TEST(replay_pipeline)
{
	char *dir = lt_test_tmpdir("replay-pipe");
	char proc[512], pers[512], none[512], cap[512];
	struct consumer kp = {0}, kq = {0};
	struct lt_error e = {0};
	struct lt_replay_stats st;
	pthread_t tp, tq;

	snprintf(cap, sizeof(cap), "%s/r.cap", dir);
	snprintf(proc, sizeof(proc), "ipc://%s/proc.ipc", dir);
	snprintf(pers, sizeof(pers), "ipc://%s/pers.ipc", dir);
	snprintf(none, sizeof(none), "ipc://%s/nobody.ipc", dir);
	make_capture(cap, 20, 50);
	ck_assert_int_eq(lt_bus_consumer_open(proc, NULL, LT_WIRE_CONSUMER_PROCESSOR, &kp.bus, &e), LT_OK);
	ck_assert_int_eq(lt_bus_consumer_open(pers, NULL, LT_WIRE_CONSUMER_PERSISTER, &kq.bus, &e), LT_OK);
	pthread_create(&tp, NULL, consume, &kp);
	pthread_create(&tq, NULL, consume, &kq);

	ck_assert_int_eq(replay_to_pipeline(cap, proc, pers, 20000, &st), LT_OK);
	ck_assert_int_eq(st.messages, 1000);
	ck_assert_int_eq(st.pending, 0);
	/* every record reached both kinds (resends may add more, never fewer) */
	ck_assert_int_ge(atomic_load(&kp.records), 1000);
	ck_assert_int_ge(atomic_load(&kq.records), 1000);

	atomic_store(&kp.stop, 1);
	atomic_store(&kq.stop, 1);
	pthread_join(tp, NULL);
	pthread_join(tq, NULL);
	lt_bus_consumer_close(kp.bus);
	lt_bus_consumer_close(kq.bus);

	/* nobody listening: the drain times out and names what is left */
	ck_assert_int_eq(replay_to_pipeline(cap, none, none, 300, &st), LT_ETIMEDOUT);
	ck_assert_int_eq(st.messages, 1000);
	ck_assert_int_eq(st.pending, 1000);
	free(dir);
}
END_TEST

START_TEST(replay_pace)
{
	char *path = tmpfile_path("p.cap");
	struct lt_platform_conf conf = {.room = "21452505", .skip_bootstrap = true};
	struct lt_replay_stats st;
	struct lt_error e = {0};
	FILE *devnull = fopen("/dev/null", "w");

	make_capture(path, 4, 2); /* frames 10 ms apart, then a heartbeat 1 s after the first */
	struct lt_replay_opts o = {.path = path, .ops = &lt_platform_bilibili, .conf = &conf, .out = devnull};
	int64_t t0 = lt_clock_mono_ms();
	ck_assert_int_eq(lt_replay_run(&o, &st, &e), LT_OK);
	ck_assert_int_lt(lt_clock_mono_ms() - t0, 900); /* as fast as it goes */
	o.pace = true;
	t0 = lt_clock_mono_ms();
	ck_assert_int_eq(lt_replay_run(&o, &st, &e), LT_OK);
	int64_t took = lt_clock_mono_ms() - t0;
	ck_assert_int_ge(took, 990); /* the recorded second is kept */
	ck_assert_int_lt(took, 5000);
	ck_assert_int_eq(st.messages, 8);
	fclose(devnull);
	free(path);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("capture");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, golden_record);
	tcase_add_test(tc, parse_bad);
	tcase_add_test(tc, file_round_trip);
	tcase_add_test(tc, replay_stdout);
	tcase_add_test(tc, replay_pipeline);
	tcase_add_test(tc, replay_pace);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
