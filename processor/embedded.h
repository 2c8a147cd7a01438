/* SPDX-License-Identifier: MIT */
/*
 * embedded: data files compiled into the processor by embed.py (meson
 * custom_target): the slang and stop-word lists and the Redis apply script.
 * Each is a byte array (NUL-terminated) with its length; read-only, static.
 */
#ifndef LT_PROCESSOR_EMBEDDED_H
#define LT_PROCESSOR_EMBEDDED_H

#include <stddef.h>

extern const char lt_embed_slang[];
extern const size_t lt_embed_slang_len;
extern const char lt_embed_stopwords[];
extern const size_t lt_embed_stopwords_len;
extern const char lt_embed_apply_lua[];
extern const size_t lt_embed_apply_lua_len;

#endif
