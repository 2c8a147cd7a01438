/* SPDX-License-Identifier: MIT */
/*
 * segment: chat text into hot-word candidates with libfriso, the repo's slang
 * list and stop words. See segment.h for the rules; this file is the pre-pass
 * (emoticon codes, run folding, invalid bytes), the friso loop and the token
 * filter.
 */
#include "processor/segment.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <friso/friso.h>

#include "processor/embedded.h"

#define EMOTICON_MAX 32 /* bytes between '[' and ']' for an emoticon code */

/* Live chat repeats itself ("666666", "哈哈哈哈"): a direct-mapped cache of
 * short texts and their words spares friso most of the work. 4096 entries of
 * under 400 bytes: 1.6 MB. */
#define CACHE_SLOTS 4096
#define CACHE_TEXT_MAX 96
#define CACHE_WORDS_MAX 256

struct cache_slot {
	uint32_t hash;
	uint16_t text_len;   /* 0 = empty */
	uint16_t words_len;  /* bytes of NUL-terminated words */
	uint8_t n;
	char text[CACHE_TEXT_MAX];
	char words[CACHE_WORDS_MAX];
};

struct lt_segment {
	friso_t friso;
	friso_config_t cfg;
	friso_task_t task;
	struct lt_buf text;  /* the folded, NUL-terminated text for friso */
	char **slang;        /* sorted, for bsearch */
	size_t nslang;
	struct cache_slot *cache; /* NULL if it could not be allocated */
};

/* Decode one UTF-8 sequence at p[0..n): the code point and its length, or 0
 * for an invalid or truncated sequence (overlongs and surrogates included). */
static size_t utf8_next(const unsigned char *p, size_t n, unsigned *cp)
{
	unsigned c = p[0];
	size_t len;
	unsigned v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		v = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		v = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		v = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* An emoticon code starts at p ('['): up to EMOTICON_MAX bytes of anything
 * but brackets and white space, then ']'. Returns its length or 0. */
static size_t emoticon_len(const char *p, size_t n)
{
	size_t lim = n < EMOTICON_MAX + 2 ? n : EMOTICON_MAX + 2;

	for (size_t i = 1; i < lim; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == ']')
			return i > 1 ? i + 1 : 0;
		if (c == '[' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
			return 0;
	}
	return 0;
}

int lt_segment_fold(const char *text, size_t len, struct lt_buf *out)
{
	size_t i = 0;
	unsigned prev = 0;
	int run = 0;

	while (i < len) {
		unsigned cp;
		size_t k;

		if (text[i] == '[') {
			size_t e = emoticon_len(text + i, len - i);
			if (e) {
				lt_buf_putc(out, ' ');
				i += e;
				prev = ' ';
				run = 1;
				continue;
			}
		}
		k = utf8_next((const unsigned char *)text + i, len - i, &cp);
		if (k == 0) { /* invalid byte: drop it, and break any word */
			i++;
			continue;
		}
		if (cp < 0x20 || cp == 0x7f)
			cp = ' ';
		if (cp == prev) {
			if (++run > 3) {
				i += k;
				continue;
			}
		} else {
			prev = cp;
			run = 1;
		}
		if (cp == ' ')
			lt_buf_putc(out, ' ');
		else
			lt_buf_append(out, text + i, k);
		i += k;
	}
	return lt_buf_err(out);
}

static int slang_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int lt_segment_is_slang(const struct lt_segment *s, const char *word, size_t len)
{
	char key[LT_SEGMENT_WORD_MAX + 1];
	const char *kp = key;

	if (len > LT_SEGMENT_WORD_MAX || s->nslang == 0)
		return 0;
	memcpy(key, word, len);
	key[len] = '\0';
	return bsearch(&kp, s->slang, s->nslang, sizeof(char *), slang_cmp) != NULL;
}

/* Call fn for every word line of an embedded list (comments and blank lines
 * skipped, surrounding white space trimmed). Returns LT_ENOMEM if fn does. */
static int each_line(const char *data, size_t n, int (*fn)(struct lt_segment *, const char *, size_t),
		     struct lt_segment *s)
{
	size_t i = 0;

	while (i < n) {
		size_t b = i, e;
		while (i < n && data[i] != '\n')
			i++;
		e = i++;
		while (b < e && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r'))
			b++;
		while (e > b && (data[e - 1] == ' ' || data[e - 1] == '\t' || data[e - 1] == '\r'))
			e--;
		if (e == b || data[b] == '#' || e - b > LT_SEGMENT_WORD_MAX)
			continue;
		if (fn(s, data + b, e - b) != LT_OK)
			return LT_ENOMEM;
	}
	return LT_OK;
}

/* friso's dictionary keeps the word pointer it is given and frees it with
 * the dictionary; add a word only if it is not there yet. */
static int dic_add(struct lt_segment *s, friso_lex_t lex, const char *w, size_t n)
{
	char *copy = strndup(w, n);

	if (!copy)
		return LT_ENOMEM;
	if (friso_dic_match(s->friso->dic, lex, copy)) {
		free(copy);
		return LT_OK;
	}
	friso_dic_add(s->friso->dic, lex, copy, NULL);
	return LT_OK;
}

static int add_slang(struct lt_segment *s, const char *w, size_t n)
{
	char **grown = realloc(s->slang, (s->nslang + 1) * sizeof(char *));

	if (!grown)
		return LT_ENOMEM;
	s->slang = grown;
	if (!(s->slang[s->nslang] = strndup(w, n)))
		return LT_ENOMEM;
	s->nslang++;
	return dic_add(s, __LEX_CJK_WORDS__, w, n);
}

static int add_stop(struct lt_segment *s, const char *w, size_t n)
{
	return dic_add(s, __LEX_STOPWORDS__, w, n);
}

int lt_segment_open(const char *dict_dir, struct lt_segment **out, struct lt_error *e)
{
	struct lt_segment *s;
	char ini[4096];
	struct stat st;
	size_t dl;
	int rc;

	if (!dict_dir || !*dict_dir)
		dict_dir = LT_SEGMENT_DICT_DEFAULT;
	dl = strlen(dict_dir);
	if (dl + 32 > sizeof(ini))
		return lt_error_set(e, LT_EINVAL, "friso dictionary path too long");
	/* friso concatenates the directory and the file names itself. */
	snprintf(ini, sizeof(ini), "%s%sfriso.lex.ini", dict_dir, dict_dir[dl - 1] == '/' ? "" : "/");
	if (stat(ini, &st) != 0)
		return lt_error_set(e, LT_ENOTFOUND, "friso dictionary not found: %s (install friso-dict)", ini);
	ini[strlen(ini) - strlen("friso.lex.ini")] = '\0';

	s = calloc(1, sizeof(*s));
	if (!s)
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	lt_buf_init(&s->text, 0);
	s->friso = friso_new();
	s->cfg = friso_new_config();
	s->task = friso_new_task();
	if (!s->friso || !s->cfg || !s->task) {
		rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		goto fail;
	}
	s->friso->charset = FRISO_UTF8;
	s->friso->dic = friso_dic_new();
	s->cfg->add_syn = 0;   /* no synonyms: we count what people typed */
	s->cfg->clr_stw = 0;   /* we filter stop words ourselves, after folding */
	s->cfg->keep_urec = 1; /* keep unknown runs: new slang is what we want */
	s->cfg->en_sseg = 0;
	friso_set_mode(s->cfg, __FRISO_COMPLEX_MODE__);
	friso_dic_load_from_ifile(s->friso, s->cfg, ini, s->cfg->max_len * 3);
	if (friso_spec_dic_size(s->friso->dic, __LEX_CJK_WORDS__) == 0) {
		rc = lt_error_set(e, LT_ENOTFOUND, "friso dictionary in %s is empty", ini);
		goto fail;
	}
	if (each_line(lt_embed_slang, lt_embed_slang_len, add_slang, s) != LT_OK ||
	    each_line(lt_embed_stopwords, lt_embed_stopwords_len, add_stop, s) != LT_OK) {
		rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		goto fail;
	}
	qsort(s->slang, s->nslang, sizeof(char *), slang_cmp);
	s->cache = calloc(CACHE_SLOTS, sizeof(*s->cache)); /* optional */
	*out = s;
	return LT_OK;
fail:
	lt_segment_close(s);
	return rc;
}

void lt_segment_close(struct lt_segment *s)
{
	if (!s)
		return;
	if (s->task)
		friso_free_task(s->task);
	if (s->cfg)
		friso_free_config(s->cfg);
	if (s->friso)
		friso_free(s->friso);
	for (size_t i = 0; i < s->nslang; i++)
		free(s->slang[i]);
	free(s->slang);
	free(s->cache);
	lt_buf_free(&s->text);
	free(s);
}

static int is_word_char(unsigned cp)
{
	return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
	       (cp >= 0x3040 && cp <= 0x30ff) ||   /* kana */
	       (cp >= 0x3400 && cp <= 0x4dbf) ||   /* CJK extension A */
	       (cp >= 0x4e00 && cp <= 0x9fff) ||   /* CJK unified */
	       (cp >= 0xac00 && cp <= 0xd7af) ||   /* hangul */
	       (cp >= 0xf900 && cp <= 0xfaff) ||   /* CJK compatibility */
	       (cp >= 0x20000 && cp <= 0x2ffff);   /* CJK extensions B… */
}

/* Filter one friso token in place (lower-casing Latin). Returns 1 to keep. */
static int keep_token(struct lt_segment *s, friso_token_t t, char *w, size_t n)
{
	size_t i = 0, chars = 0;
	int digits = 1;

	if (t->type == __LEX_PUNC_WORDS__ || n == 0 || n > LT_SEGMENT_WORD_MAX)
		return 0;
	while (i < n) {
		unsigned cp;
		size_t k = utf8_next((const unsigned char *)w + i, n - i, &cp);
		if (k == 0 || !is_word_char(cp))
			return 0;
		if (cp >= 'A' && cp <= 'Z')
			w[i] = (char)(cp - 'A' + 'a');
		if (cp < '0' || cp > '9')
			digits = 0;
		chars++;
		i += k;
	}
	if (friso_dic_match(s->friso->dic, __LEX_STOPWORDS__, w))
		return 0;
	if ((chars == 1 || digits) && !lt_segment_is_slang(s, w, n))
		return 0;
	return 1;
}

static uint32_t text_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static void add_word(struct lt_segment_words *out, const char *w, size_t n)
{
	for (int i = 0; i < out->n; i++)
		if (out->w[i].len == n && memcmp(out->w[i].p, w, n) == 0)
			return;
	if (out->n == LT_SEGMENT_MAX_WORDS)
		return;
	memcpy(out->buf + out->used, w, n);
	out->buf[out->used + n] = '\0';
	out->w[out->n].p = out->buf + out->used;
	out->w[out->n].len = (uint32_t)n;
	out->n++;
	out->used += n + 1;
}

int lt_segment_words(struct lt_segment *s, const char *text, size_t len, struct lt_segment_words *out)
{
	struct cache_slot *slot = NULL;
	uint32_t h = 0;

	out->n = 0;
	out->used = 0;
	if (s->cache && len > 0 && len <= CACHE_TEXT_MAX) {
		h = text_hash(text, len);
		slot = &s->cache[h & (CACHE_SLOTS - 1)];
		if (slot->text_len == len && slot->hash == h && memcmp(slot->text, text, len) == 0) {
			for (size_t off = 0; off < slot->words_len;) {
				size_t n = strlen(slot->words + off);
				add_word(out, slot->words + off, n);
				off += n + 1;
			}
			return LT_OK;
		}
	}
	lt_buf_reset(&s->text);
	if (lt_segment_fold(text, len, &s->text) != LT_OK)
		return LT_OK; /* out of memory: no words for this text */
	if (s->text.len == 0)
		return LT_OK;
	friso_set_text(s->task, (fstring)lt_buf_cstr(&s->text));
	while (s->cfg->next_token(s->friso, s->cfg, s->task) != NULL) {
		friso_token_t t = s->task->token;
		char w[LT_SEGMENT_WORD_MAX + 1];
		size_t n = strnlen(t->word, sizeof(t->word));

		if (n > LT_SEGMENT_WORD_MAX)
			continue;
		memcpy(w, t->word, n);
		w[n] = '\0';
		if (keep_token(s, t, w, n))
			add_word(out, w, n);
	}
	if (slot && out->used <= CACHE_WORDS_MAX) {
		slot->hash = h;
		slot->text_len = (uint16_t)len;
		memcpy(slot->text, text, len);
		memcpy(slot->words, out->buf, out->used);
		slot->words_len = (uint16_t)out->used;
		slot->n = (uint8_t)out->n;
	}
	return LT_OK;
}
