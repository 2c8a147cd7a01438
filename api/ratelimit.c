/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: a fixed open-addressed table of token buckets (see
 * ratelimit.h). Keys are hashed with FNV-1a; a probe window of 8 slots
 * keeps lookups short, and eviction picks the stalest slot of the window.
 */
#include "api/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RL_SLOTS 8192
#define RL_PROBE 8
#define RL_KEY	 72

struct rl_slot {
	char key[RL_KEY];
	double tokens;
	int64_t last_ms;
};

struct lt_rl {
	double rate, burst;
	struct rl_slot *slots;
};

struct lt_rl *lt_rl_new(double rate, double burst)
{
	struct lt_rl *rl = calloc(1, sizeof *rl);
	if (!rl)
		return NULL;
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	if (rate > 0) {
		rl->slots = calloc(RL_SLOTS, sizeof *rl->slots);
		if (!rl->slots) {
			free(rl);
			return NULL;
		}
	}
	return rl;
}

void lt_rl_free(struct lt_rl *rl)
{
	if (!rl)
		return;
	free(rl->slots);
	free(rl);
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/* See ratelimit.h. */
bool lt_rl_take(struct lt_rl *rl, const char *key, int64_t now_ms, int *retry_s)
{
	if (!rl || rl->rate <= 0)
		return true;
	uint32_t h = fnv1a(key);
	struct rl_slot *s = NULL, *stale = NULL;
	for (int i = 0; i < RL_PROBE; i++) {
		struct rl_slot *c = &rl->slots[(h + (uint32_t)i) % RL_SLOTS];
		if (c->key[0] && !strncmp(c->key, key, RL_KEY - 1)) {
			s = c;
			break;
		}
		if (!c->key[0]) {
			if (!stale || stale->key[0])
				stale = c;
		} else if (!stale || (stale->key[0] && c->last_ms < stale->last_ms)) {
			stale = c;
		}
	}
	if (!s) {
		s = stale;
		strncpy(s->key, key, RL_KEY - 1);
		s->key[RL_KEY - 1] = '\0';
		s->tokens = rl->burst;
		s->last_ms = now_ms;
	}
	if (now_ms > s->last_ms) {
		s->tokens += (double)(now_ms - s->last_ms) * rl->rate / 1000.0;
		if (s->tokens > rl->burst)
			s->tokens = rl->burst;
		s->last_ms = now_ms;
	}
	if (s->tokens >= 1.0) {
		s->tokens -= 1.0;
		return true;
	}
	if (retry_s) {
		int r = (int)ceil((1.0 - s->tokens) / rl->rate);
		*retry_s = r < 1 ? 1 : r;
	}
	return false;
}
