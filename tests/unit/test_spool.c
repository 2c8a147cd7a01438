/* SPDX-License-Identifier: MIT */
/*
 * test_spool: common/spool.c on a real temporary directory: append and scan,
 * a torn tail and a CRC-corrupt record are truncated and counted, segments
 * are deleted once every record in them is released, the disk cap gives
 * LT_EAGAIN, and a reopened spool continues where the last one stopped.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "common/spool.h"
#include "tests/support/testsupport.h"

#define MAXREC 64

struct seen {
	int n;
	struct lt_spool_pos pos[MAXREC];
	char data[MAXREC][64];
	size_t len[MAXREC];
	int keep_from; /* keep records with index >= keep_from */
};

static bool collect(void *ctx, const struct lt_spool_pos *pos, const uint8_t *data, size_t len)
{
	struct seen *s = ctx;
	ck_assert_int_lt(s->n, MAXREC);
	ck_assert_uint_lt(len, sizeof(s->data[0]));
	s->pos[s->n] = *pos;
	memcpy(s->data[s->n], data, len);
	s->data[s->n][len] = '\0';
	s->len[s->n] = len;
	s->n++;
	return s->n - 1 >= s->keep_from;
}

static int count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".seg"))
			n++;
	closedir(d);
	return n;
}

static char *first_segment(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	char best[256] = "";
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".seg") && (!best[0] || strcmp(de->d_name, best) < 0))
			snprintf(best, sizeof(best), "%s", de->d_name);
	closedir(d);
	ck_assert(best[0] != '\0');
	size_t n = strlen(dir) + strlen(best) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, best);
	return p;
}

static struct lt_spool *open_ok(const char *dir, const struct lt_spool_opts *o, struct seen *s)
{
	struct lt_spool *sp = NULL;
	struct lt_error e = {0};
	int rc = lt_spool_open(dir, o, s ? collect : NULL, s, &sp, &e);
	ck_assert_msg(rc == LT_OK, "open: %s", e.message);
	return sp;
}

static void append_str(struct lt_spool *sp, const char *str, struct lt_spool_pos *pos)
{
	ck_assert_int_eq(lt_spool_append(sp, str, strlen(str), pos), LT_OK);
}

START_TEST(append_scan_reopen)
{
	char *base = lt_test_tmpdir("spool-basic");
	char *dir = lt_spool_dir_for(base, "bilibili:123");
	struct lt_spool *sp = open_ok(dir, NULL, NULL);
	struct lt_spool_pos p[3];
	append_str(sp, "alpha", &p[0]);
	append_str(sp, "beta", &p[1]);
	append_str(sp, "gamma", &p[2]);
	ck_assert_uint_eq(p[0].seg, p[2].seg);
	ck_assert_uint_lt(p[0].off, p[1].off);
	uint8_t buf[16];
	ck_assert_int_eq(lt_spool_read(sp, &p[1], buf), LT_OK);
	ck_assert_mem_eq(buf, "beta", 4);
	struct lt_spool_stats st;
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.live, 3);
	ck_assert_uint_eq(st.appends, 3);
	ck_assert_uint_eq(st.bytes, 8 + 3 * 8 + 5 + 4 + 5);
	lt_spool_close(sp);

	struct seen s = {0};
	sp = open_ok(dir, NULL, &s);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.data[0], "alpha");
	ck_assert_str_eq(s.data[1], "beta");
	ck_assert_str_eq(s.data[2], "gamma");
	ck_assert_uint_eq(s.pos[2].off, p[2].off);
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.recovered, 3);
	ck_assert_uint_eq(st.corrupt, 0);
	/* New appends go to a new segment after the recovered one. */
	struct lt_spool_pos q;
	append_str(sp, "delta", &q);
	ck_assert_uint_gt(q.seg, p[0].seg);
	ck_assert_int_eq(lt_spool_read(sp, &s.pos[0], buf), LT_OK);
	ck_assert_mem_eq(buf, "alpha", 5);
	lt_spool_close(sp);
	ck_assert(strstr(dir, "bilibili%3A123") != NULL);
	free(dir);
	free(base);
}
END_TEST

START_TEST(torn_tail_truncated)
{
	char *dir = lt_test_tmpdir("spool-torn");
	struct lt_spool *sp = open_ok(dir, NULL, NULL);
	struct lt_spool_pos p;
	append_str(sp, "one", &p);
	append_str(sp, "two", &p);
	lt_spool_close(sp);
	char *seg = first_segment(dir);
	struct stat sb;
	ck_assert_int_eq(stat(seg, &sb), 0);
	off_t good = sb.st_size;
	/* A torn write: a header promising 100 bytes, then 3 of them. */
	int fd = open(seg, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	const uint8_t torn[] = {100, 0, 0, 0, 1, 2, 3, 4, 'x', 'y', 'z'};
	ck_assert_int_eq(write(fd, torn, sizeof(torn)), (ssize_t)sizeof(torn));
	close(fd);

	struct seen s = {0};
	sp = open_ok(dir, NULL, &s);
	ck_assert_int_eq(s.n, 2);
	ck_assert_str_eq(s.data[1], "two");
	struct lt_spool_stats st;
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.corrupt, 1);
	ck_assert_uint_eq(st.truncated_bytes, sizeof(torn));
	ck_assert_int_eq(stat(seg, &sb), 0);
	ck_assert_int_eq(sb.st_size, good);
	lt_spool_close(sp);
	free(seg);
	free(dir);
}
END_TEST

START_TEST(crc_corrupt_record)
{
	char *dir = lt_test_tmpdir("spool-crc");
	struct lt_spool *sp = open_ok(dir, NULL, NULL);
	struct lt_spool_pos p[3];
	append_str(sp, "first", &p[0]);
	append_str(sp, "second", &p[1]);
	append_str(sp, "third", &p[2]);
	lt_spool_close(sp);
	char *seg = first_segment(dir);
	int fd = open(seg, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	/* Flip one byte of "second". */
	ck_assert_int_eq(pwrite(fd, "S", 1, (off_t)p[1].off + 8), 1);
	close(fd);

	struct seen s = {0};
	sp = open_ok(dir, NULL, &s);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.data[0], "first");
	struct lt_spool_stats st;
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.corrupt, 1);
	ck_assert_uint_eq(st.truncated_bytes, 8 + 6 + 8 + 5);
	/* Reading a position that was cut off is refused, not garbage. */
	uint8_t buf[16];
	ck_assert_int_ne(lt_spool_read(sp, &p[2], buf), LT_OK);
	lt_spool_close(sp);
	free(seg);
	free(dir);
}
END_TEST

START_TEST(bad_magic_segment)
{
	char *dir = lt_test_tmpdir("spool-magic");
	char path[4096];
	snprintf(path, sizeof(path), "%s/00000000000000000007.seg", dir);
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "garbage!garbage!", 16), 16);
	close(fd);
	struct seen s = {0};
	struct lt_spool *sp = open_ok(dir, NULL, &s);
	ck_assert_int_eq(s.n, 0);
	struct lt_spool_stats st;
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.corrupt, 1);
	ck_assert_int_eq(count_segments(dir), 0);
	/* Ids continue above the one found, never reusing a name. */
	struct lt_spool_pos p;
	append_str(sp, "x", &p);
	ck_assert_uint_eq(p.seg, 8);
	lt_spool_close(sp);
	free(dir);
}
END_TEST

START_TEST(segments_deleted_when_released)
{
	char *dir = lt_test_tmpdir("spool-trim");
	/* 8 header + 2 records of 8 + 10 = 44 bytes per segment. */
	struct lt_spool_opts o = {.segment_bytes = 44};
	struct lt_spool *sp = open_ok(dir, &o, NULL);
	struct lt_spool_pos p[6];
	for (int i = 0; i < 6; i++) {
		char rec[32];
		snprintf(rec, sizeof(rec), "record-%03d", i);
		append_str(sp, rec, &p[i]);
	}
	ck_assert_uint_eq(p[0].seg, p[1].seg);
	ck_assert_uint_ne(p[1].seg, p[2].seg);
	ck_assert_uint_eq(p[4].seg, p[5].seg);
	ck_assert_int_eq(count_segments(dir), 3);
	/* Releasing out of order: the middle segment goes first. */
	lt_spool_release(sp, &p[2]);
	ck_assert_int_eq(count_segments(dir), 3);
	lt_spool_release(sp, &p[3]);
	ck_assert_int_eq(count_segments(dir), 2);
	lt_spool_release(sp, &p[1]);
	ck_assert_int_eq(count_segments(dir), 2);
	lt_spool_release(sp, &p[0]);
	ck_assert_int_eq(count_segments(dir), 1);
	/* The active segment stays while it is active, even when empty... */
	lt_spool_release(sp, &p[4]);
	lt_spool_release(sp, &p[5]);
	ck_assert_int_eq(count_segments(dir), 1);
	struct lt_spool_stats st;
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.live, 0);
	ck_assert_uint_eq(st.deleted_segments, 2);
	/* ...and goes when the next append rolls over. */
	struct lt_spool_pos q;
	append_str(sp, "record-006", &q);
	ck_assert_int_eq(count_segments(dir), 1);
	ck_assert_uint_gt(q.seg, p[5].seg);
	lt_spool_release(sp, &q);
	lt_spool_close(sp);
	ck_assert_int_eq(count_segments(dir), 0);
	free(dir);
}
END_TEST

START_TEST(disk_cap_eagain)
{
	char *dir = lt_test_tmpdir("spool-cap");
	struct lt_spool_opts o = {.segment_bytes = 44, .max_bytes = 100};
	struct lt_spool *sp = open_ok(dir, &o, NULL);
	struct lt_spool_pos p[4];
	append_str(sp, "record-000", &p[0]);
	append_str(sp, "record-001", &p[1]);
	append_str(sp, "record-002", &p[2]);
	append_str(sp, "record-003", &p[3]); /* 88 bytes in two segments */
	struct lt_spool_pos q;
	ck_assert_int_eq(lt_spool_append(sp, "record-004", 10, &q), LT_EAGAIN);
	struct lt_spool_stats st;
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.bytes, 88);
	ck_assert_uint_eq(st.live, 4);
	lt_spool_release(sp, &p[0]);
	lt_spool_release(sp, &p[1]);
	ck_assert_int_eq(lt_spool_append(sp, "record-004", 10, &q), LT_OK);
	ck_assert_int_eq(lt_spool_append(sp, "", 0, &q), LT_OK); /* empty records are fine */
	ck_assert_int_eq(lt_spool_append(sp, "x", LT_SPOOL_RECORD_MAX + 1u, &q), LT_ETOOBIG);
	lt_spool_close(sp);
	free(dir);
}
END_TEST

START_TEST(restart_keeps_only_what_caller_keeps)
{
	char *dir = lt_test_tmpdir("spool-restart");
	struct lt_spool_opts o = {.segment_bytes = 44};
	struct lt_spool *sp = open_ok(dir, &o, NULL);
	struct lt_spool_pos p;
	for (int i = 0; i < 6; i++) {
		char rec[32];
		snprintf(rec, sizeof(rec), "record-%03d", i);
		append_str(sp, rec, &p);
	}
	lt_spool_close(sp);
	ck_assert_int_eq(count_segments(dir), 3);
	/* The caller says records 0..2 were done already: segment 1 goes at
	 * once, segment 2 keeps record 3. */
	struct seen s = {.keep_from = 3};
	sp = open_ok(dir, &o, &s);
	ck_assert_int_eq(s.n, 6);
	ck_assert_int_eq(count_segments(dir), 2);
	struct lt_spool_stats st;
	lt_spool_stats(sp, &st);
	ck_assert_uint_eq(st.live, 3);
	ck_assert_uint_eq(st.recovered, 3);
	for (int i = 3; i < 6; i++)
		lt_spool_release(sp, &s.pos[i]);
	ck_assert_int_eq(count_segments(dir), 0);
	lt_spool_close(sp);

	struct seen s2 = {0};
	sp = open_ok(dir, &o, &s2);
	ck_assert_int_eq(s2.n, 0);
	lt_spool_close(sp);
	free(dir);
}
END_TEST

START_TEST(one_process_per_spool)
{
	char *dir = lt_test_tmpdir("spool-lock");
	struct lt_spool *a = open_ok(dir, NULL, NULL);
	struct lt_spool *b = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_spool_open(dir, NULL, NULL, NULL, &b, &e), LT_EEXIST);
	ck_assert_ptr_null(b);
	ck_assert(strstr(e.message, "in use") != NULL);
	lt_spool_close(a);
	b = open_ok(dir, NULL, NULL);
	lt_spool_close(b);
	free(dir);
}
END_TEST

START_TEST(dir_names_injective)
{
	char *a = lt_spool_dir_for("b", "x:1");
	char *b = lt_spool_dir_for("b", "x_1");
	char *c = lt_spool_dir_for("b", "../etc");
	ck_assert_str_eq(a, "b/x%3A1");
	ck_assert_str_eq(b, "b/x_1");
	ck_assert_str_eq(c, "b/%2E%2E%2Fetc");
	free(a);
	free(b);
	free(c);
}
END_TEST

static Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, append_scan_reopen);
	tcase_add_test(tc, torn_tail_truncated);
	tcase_add_test(tc, crc_corrupt_record);
	tcase_add_test(tc, bad_magic_segment);
	tcase_add_test(tc, segments_deleted_when_released);
	tcase_add_test(tc, disk_cap_eagain);
	tcase_add_test(tc, restart_keeps_only_what_caller_keeps);
	tcase_add_test(tc, one_process_per_spool);
	tcase_add_test(tc, dir_names_injective);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(spool_suite());
}
