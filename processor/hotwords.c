/* SPDX-License-Identifier: MIT */
/*
 * hotwords: the hot-word plugin (one word op per distinct, unblocked word of
 * a chat or super-chat message) and the in-memory reference model of
 * apply.lua's buckets, windows and trend. See hotwords.h.
 */
#include "processor/hotwords.h"

#include <stdlib.h>
#include <string.h>

#include "processor/plugin.h"

const int lt_hotwords_span[LT_HW_NWIN] = {6, 30, 180};
const int lt_hotwords_minutes[LT_HW_NWIN] = {1, 5, 30};
const char *const lt_hotwords_window_name[LT_HW_NWIN] = {"1m", "5m", "30m"};

#define MODEL_ENTRIES 65536
#define CATCHUP 200 /* as apply.lua: at most this many buckets per tick */

int64_t lt_hotwords_bucket(int64_t ts_ms)
{
	return ts_ms >= 0 ? ts_ms / LT_HOTWORDS_BUCKET_MS : -((-ts_ms + LT_HOTWORDS_BUCKET_MS - 1) / LT_HOTWORDS_BUCKET_MS);
}

double lt_hotwords_trend(int64_t count, int win, int64_t count30)
{
	double r30 = (double)count30 / 30.0;
	double rw = (double)count / (double)lt_hotwords_minutes[win];

	return (rw - r30) / (r30 + 1.0);
}

struct entry {
	int64_t bucket;
	int word;
	int64_t count;
};

struct lt_hotwords {
	char *words[LT_HOTWORDS_MODEL_WORDS];
	int nwords;
	int64_t win[LT_HW_NWIN][LT_HOTWORDS_MODEL_WORDS];
	int64_t cur[LT_HW_NWIN];
	int have_cur;
	struct entry *e;
	int ne;
};

int lt_hotwords_new(struct lt_hotwords **out)
{
	struct lt_hotwords *h = calloc(1, sizeof(*h));

	if (!h || !(h->e = calloc(MODEL_ENTRIES, sizeof(*h->e)))) {
		free(h);
		return LT_ENOMEM;
	}
	*out = h;
	return LT_OK;
}

void lt_hotwords_free(struct lt_hotwords *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->nwords; i++)
		free(h->words[i]);
	free(h->e);
	free(h);
}

void lt_hotwords_tick(struct lt_hotwords *h, int64_t now_ms)
{
	int64_t nowb = lt_hotwords_bucket(now_ms);

	for (int w = 0; w < LT_HW_NWIN; w++) {
		int64_t target = nowb - lt_hotwords_span[w];
		int64_t from;
		if (!h->have_cur) {
			h->cur[w] = target;
			continue;
		}
		if (h->cur[w] >= target)
			continue;
		from = h->cur[w] + 1;
		if (from < target - CATCHUP)
			from = target - CATCHUP;
		for (int i = 0; i < h->ne; i++)
			if (h->e[i].bucket >= from && h->e[i].bucket <= target)
				h->win[w][h->e[i].word] -= h->e[i].count;
		h->cur[w] = target;
	}
	h->have_cur = 1;
	/* forget buckets every window has passed (Redis lets them expire) */
	for (int i = 0; i < h->ne;)
		if (h->e[i].bucket <= h->cur[LT_HW_30M])
			h->e[i] = h->e[--h->ne];
		else
			i++;
}

static int word_index(const struct lt_hotwords *h, const char *word)
{
	for (int i = 0; i < h->nwords; i++)
		if (strcmp(h->words[i], word) == 0)
			return i;
	return -1;
}

int lt_hotwords_add(struct lt_hotwords *h, const char *word, int64_t ts_ms, int64_t n, int64_t now_ms)
{
	int64_t b;
	int wi, i;

	lt_hotwords_tick(h, now_ms);
	if (ts_ms > now_ms)
		ts_ms = now_ms;
	b = lt_hotwords_bucket(ts_ms);
	wi = word_index(h, word);
	if (wi < 0) {
		if (h->nwords == LT_HOTWORDS_MODEL_WORDS)
			return LT_ETOOBIG;
		if (!(h->words[h->nwords] = strdup(word)))
			return LT_ENOMEM;
		wi = h->nwords++;
	}
	for (i = 0; i < h->ne; i++)
		if (h->e[i].bucket == b && h->e[i].word == wi)
			break;
	if (i == h->ne) {
		if (h->ne == MODEL_ENTRIES)
			return LT_ETOOBIG;
		h->e[h->ne++] = (struct entry){b, wi, 0};
	}
	h->e[i].count += n;
	for (int w = 0; w < LT_HW_NWIN; w++)
		if (b > h->cur[w])
			h->win[w][wi] += n;
	return LT_OK;
}

int64_t lt_hotwords_count(const struct lt_hotwords *h, int win, const char *word)
{
	int wi = word_index(h, word);

	return wi < 0 || win < 0 || win >= LT_HW_NWIN ? 0 : h->win[win][wi];
}

double lt_hotwords_score(const struct lt_hotwords *h, int win, const char *word, int *present)
{
	int64_t c = lt_hotwords_count(h, win, word);

	*present = c > 0 && (win == LT_HW_1M || win == LT_HW_5M);
	return *present ? lt_hotwords_trend(c, win, lt_hotwords_count(h, LT_HW_30M, word)) : 0.0;
}

int lt_hotwords_nwords(const struct lt_hotwords *h)
{
	return h->nwords;
}

const char *lt_hotwords_word(const struct lt_hotwords *h, int i)
{
	return i >= 0 && i < h->nwords ? h->words[i] : NULL;
}

/* ---- the plugin --------------------------------------------------------- */

static int hw_on_message(void *state, struct lt_proc_msg *pm, struct lt_ops *ops)
{
	(void)state;
	if (!pm->words)
		return LT_OK;
	/* older than every window: the script would only touch a dead bucket */
	if (pm->ts <= pm->now_ms - 30 * 60000 - LT_HOTWORDS_BUCKET_MS)
		return LT_OK;
	for (int i = 0; i < pm->words->n; i++) {
		int rc;
		if (pm->blocked && pm->blocked[i])
			continue;
		rc = lt_ops_word(ops, pm, pm->words->w[i].p, pm->words->w[i].len);
		if (rc != LT_OK)
			return rc;
	}
	return LT_OK;
}

const struct lt_plugin lt_plugin_hotwords = {
	.name = "hotwords",
	.priority = 50,
	.on_message = hw_on_message,
};
