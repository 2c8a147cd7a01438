/* SPDX-License-Identifier: MIT */
/*
 * segment: chat text into hot-word candidates.
 *
 * libfriso (mmseg, complex mode) with Debian's UTF-8 lexicon, plus the repo's
 * live-chat slang list (processor/dict/slang.txt, embedded at build time) and
 * a stop-word list (processor/dict/stopwords.txt, merged with friso's own).
 * Before friso sees the text, emoticon codes like "[doge]" / "[笑哭]" are cut
 * out and runs of one character longer than three are folded to three
 * ("哈哈哈哈哈" -> "哈哈哈", "666666" -> "666", "2333333" -> "2333"). After
 * friso, a token is dropped when it is punctuation or has any character that
 * is not a letter, digit or CJK/kana/hangul character, when it is a stop word,
 * when it is one character long, or when it is all digits — the last two
 * unless slang.txt lists it ("草", "666"). Latin is lower-cased. Each word is
 * reported once per text: a hot word counts the messages that contain it.
 *
 * Threads: friso's task state is not shareable, so one lt_segment serves one
 * thread (the dictionary is loaded per lt_segment; the processor runs one).
 */
#ifndef LT_SEGMENT_H
#define LT_SEGMENT_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/msg.h"

/* Default location of Debian's friso-dict UTF-8 lexicon (ends with '/'). */
#define LT_SEGMENT_DICT_DEFAULT "/usr/share/friso/dict/UTF-8/"

#define LT_SEGMENT_MAX_WORDS 64     /* words kept per text; the rest are ignored */
#define LT_SEGMENT_WORD_MAX 63      /* bytes; friso's own token limit */

struct lt_segment;

/* The distinct words of one text, in order of first appearance. The strings
 * point into buf (NUL-terminated each) and live as long as the struct. */
struct lt_segment_words {
	int n;
	struct lt_str w[LT_SEGMENT_MAX_WORDS];
	char buf[LT_SEGMENT_MAX_WORDS * (LT_SEGMENT_WORD_MAX + 1)];
	size_t used;
};

/* Load friso with the lexicon in dict_dir (a directory holding friso.lex.ini;
 * NULL or "" means LT_SEGMENT_DICT_DEFAULT) and the embedded slang and stop
 * words. Returns LT_OK with *out owned by the caller (lt_segment_close), or
 * LT_ENOTFOUND / LT_ENOMEM with e filled in. Takes about 0.3 s (183k words). */
int lt_segment_open(const char *dict_dir, struct lt_segment **out, struct lt_error *e);

/* Free s; accepts NULL. */
void lt_segment_close(struct lt_segment *s);

/* Segment text[0..len) into out (overwritten). Returns LT_OK (possibly with
 * out->n == 0); never fails on bad input (invalid UTF-8 bytes are dropped). */
int lt_segment_words(struct lt_segment *s, const char *text, size_t len, struct lt_segment_words *out);

/* The pre-pass alone, exposed for tests: append text with emoticon codes cut
 * and runs folded to out. Returns out's sticky error. */
int lt_segment_fold(const char *text, size_t len, struct lt_buf *out);

/* True if word (lower-case, UTF-8) is on the embedded slang list. */
int lt_segment_is_slang(const struct lt_segment *s, const char *word, size_t len);

#endif
