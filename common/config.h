/* SPDX-License-Identifier: MIT */
/*
 * config: livetap's settings, declared once in a table (settings.c) with name,
 * type, default, environment variable and a help line, for every process.
 *
 * Precedence: table default < JSON file (--config, default deploy/livetap.json)
 * < environment. A key "section.key" in the table is read from the file as
 * {"section":{"key":…}} and from the environment as LIVETAP_SECTION_KEY
 * (upper case, dots to underscores) unless the table names another variable.
 * Defaults may contain ${state_dir}, replaced by the final state_dir. Secrets
 * are never printed: lt_config_dump shows them as "***". A secret may also
 * come from a key file named by its variable plus _FILE (e.g.
 * LIVETAP_KOOK_TOKEN_FILE=/run/secrets/kook), the Docker secrets convention.
 *
 * Errors name the file, the key and what is wrong, e.g.
 *   deploy/livetap.json: redis.url: expected a string, got a number
 */
#ifndef LT_CONFIG_H
#define LT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

enum lt_cfg_type {
	LT_CFG_STR,
	LT_CFG_INT,    /* int64 within [min, max] */
	LT_CFG_BOOL,
	LT_CFG_SECRET, /* string, never logged */
	LT_CFG_LIST,   /* comma-separated strings (a JSON array in the file) */
	LT_CFG_SECRET_LIST, /* a list whose elements are secrets (API keys) */
};

struct lt_cfg_def {
	const char *key;   /* "redis.url" */
	int type;          /* enum lt_cfg_type */
	const char *def;   /* default as text; NULL = unset */
	const char *env;   /* NULL = derived LIVETAP_SECTION_KEY */
	int64_t min, max;  /* for LT_CFG_INT */
	const char *help;  /* one line for --help and the README reference */
};

/* The table, terminated by an entry with key == NULL. */
extern const struct lt_cfg_def lt_cfg_table[];

struct lt_config;

/* Load settings. path NULL means the default path, which may be missing;
 * a path given explicitly must exist. envp NULL means the process
 * environment. On success *out is owned by the caller (lt_config_free). */
int lt_config_load(const char *path, const char *const *envp, struct lt_config **out, struct lt_error *e);
void lt_config_free(struct lt_config *c);

/* Getters by key. A key not in the table is a bug: abort() with a message.
 * Strings are owned by the config; NULL when unset. */
const char *lt_config_str(const struct lt_config *c, const char *key);
int64_t lt_config_int(const struct lt_config *c, const char *key);
bool lt_config_bool(const struct lt_config *c, const char *key);
/* The i-th element of a list, NULL past the end; *n gets the count. */
const char *lt_config_list(const struct lt_config *c, const char *key, int i, int *n);
/* Where a value came from: "default", "file" or "env". */
const char *lt_config_source(const struct lt_config *c, const char *key);
/* The path of the file read, or NULL if none. */
const char *lt_config_path(const struct lt_config *c);

/* Every setting as "key = value  (source)" lines, secrets as ***. */
void lt_config_dump(const struct lt_config *c, struct lt_buf *out);
/* The configuration reference in Markdown, from the table (for the README). */
void lt_config_reference_md(struct lt_buf *out);

#endif
