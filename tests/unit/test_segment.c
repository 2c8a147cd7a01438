/* SPDX-License-Identifier: MIT */
/*
 * test_segment: processor/segment.c with Debian's friso lexicon and the
 * repo's slang and stop-word lists: exact word lists for typical live chat,
 * run folding, emoticon codes, punctuation, case, stop words, single
 * characters, numbers, invalid UTF-8 and the per-text word limit.
 */
#include <stdlib.h>
#include <string.h>

#include "processor/segment.h"
#include "tests/support/testsupport.h"

static struct lt_segment *seg;

static void setup(void)
{
	struct lt_error e = {0};
	ck_assert_msg(lt_segment_open(NULL, &seg, &e) == LT_OK, "open: %s", e.message);
}

static void teardown(void)
{
	lt_segment_close(seg);
	seg = NULL;
}

/* Segment text and compare with the '|'-separated expected list. */
static void expect(const char *text, const char *want)
{
	struct lt_segment_words *w = malloc(sizeof(*w));
	struct lt_buf got = LT_BUF_INIT;

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(lt_segment_words(seg, text, strlen(text), w), LT_OK);
	for (int i = 0; i < w->n; i++) {
		if (i)
			lt_buf_putc(&got, '|');
		lt_buf_append(&got, w->w[i].p, w->w[i].len);
	}
	ck_assert_msg(strcmp(lt_buf_cstr(&got), want) == 0, "segment(\"%s\"): got \"%s\", want \"%s\"", text,
		      lt_buf_cstr(&got), want);
	lt_buf_free(&got);
	free(w);
}

static void expect_fold(const char *text, const char *want)
{
	struct lt_buf out = LT_BUF_INIT;

	ck_assert_int_eq(lt_segment_fold(text, strlen(text), &out), LT_OK);
	ck_assert_str_eq(lt_buf_cstr(&out), want);
	lt_buf_free(&out);
}

START_TEST(fold_runs_and_emoticons)
{
	expect_fold("哈哈哈哈哈", "哈哈哈");
	expect_fold("哈哈", "哈哈");
	expect_fold("666666", "666");
	expect_fold("2333333", "2333");
	expect_fold("啊啊啊啊啊啊啊啊啊啊好", "啊啊啊好");
	expect_fold("[doge]笑死[笑哭]", " 笑死 ");
	expect_fold("[unclosed 文字", "[unclosed 文字");
	expect_fold("[]", "[]");
	expect_fold("a\tb\x01" "c", "a b c");
	expect_fold("ok\xff\xfe!", "ok!");
	expect_fold("", "");
}
END_TEST

START_TEST(slang_and_folding)
{
	expect("哈哈哈哈哈哈", "哈哈哈");
	expect("666666", "666");
	expect("2333333333", "2333");
	expect("YYDS!!!", "yyds");
	expect("awsl awsl AWSL", "awsl");
	expect("破防了", "破防了");
	expect("蚌埠住了", "蚌埠住了");
	expect("前方高能！前方高能！", "前方高能");
	expect("下次一定", "下次一定");
	expect("绝绝子", "绝绝子");
	expect("爷青回", "爷青回");
	expect("有一说一", "有一说一");
}
END_TEST

START_TEST(typical_chat)
{
	expect("主播太强了，破防了666666", "主播|太强了|破防了|666");
	expect("[doge]笑死我了哈哈哈哈", "笑死我了|哈哈哈");
	expect("Hello World 你好", "hello|world|你好");
	expect("我们的主播真的很厉害", "主播|厉害");
	expect("泪目 泪目 泪目", "泪目");
	expect("草", "草");
}
END_TEST

START_TEST(dropped)
{
	/* stop words, single characters, punctuation, plain numbers, emoticons */
	expect("的 了 是 我", "");
	expect("，。！？……～", "");
	expect("12345 2026", "");
	expect("[doge][笑哭][吃瓜]", "");
	expect("   ", "");
	expect("", "");
	expect("\xe4\xbd", ""); /* a truncated character */
	expect("the and for", "");
}
END_TEST

START_TEST(word_limit)
{
	struct lt_buf text = LT_BUF_INIT;
	struct lt_segment_words *w = malloc(sizeof(*w));

	ck_assert_ptr_nonnull(w);
	for (int i = 0; i < 200; i++)
		lt_buf_printf(&text, "word%03d ", i);
	ck_assert_int_eq(lt_segment_words(seg, (const char *)text.data, text.len, w), LT_OK);
	ck_assert_int_eq(w->n, LT_SEGMENT_MAX_WORDS);
	ck_assert_str_eq(w->w[0].p, "word000");
	ck_assert_str_eq(w->w[LT_SEGMENT_MAX_WORDS - 1].p, "word063");
	ck_assert(lt_segment_is_slang(seg, "yyds", 4));
	ck_assert(!lt_segment_is_slang(seg, "word000", 7));
	lt_buf_free(&text);
	free(w);
}
END_TEST

START_TEST(bad_dict_dir)
{
	struct lt_segment *s = NULL;
	struct lt_error e = {0};

	ck_assert_int_eq(lt_segment_open("/nonexistent/friso/", &s, &e), LT_ENOTFOUND);
	ck_assert_ptr_null(s);
	ck_assert(strstr(e.message, "friso") != NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("segment");
	TCase *tc = tcase_create("segment");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, fold_runs_and_emoticons);
	tcase_add_test(tc, slang_and_folding);
	tcase_add_test(tc, typical_chat);
	tcase_add_test(tc, dropped);
	tcase_add_test(tc, word_limit);
	tcase_add_test(tc, bad_dict_dir);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
