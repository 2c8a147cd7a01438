/* SPDX-License-Identifier: MIT */
/*
 * config: loads the settings declared in lt_cfg_table (settings.c).
 *
 * A load builds one value per table entry in three layers: the table default,
 * then the JSON file, then the environment. String and list values (not
 * secrets) may name other settings as ${key}, e.g. "${state_dir}/spool";
 * references are expanded after all layers are in, so a state_dir from the
 * environment moves every default below it. Every problem becomes one
 * LT_ECONFIG error naming where (the file, or the environment variable), the
 * key and what is wrong; an unknown key in the file is an error, with a "did
 * you mean" when a declared key is close. The file is capped at 1 MiB.
 */
#include "common/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_FILE_MAX	 (1024 * 1024)
#define CFG_DEFAULT_PATH "deploy/livetap.json"
#define CFG_EXPAND_DEPTH 8
#define CFG_VALUE_MAX	 65536

extern char **environ;

struct cval {
	char *text;   /* scalar types: the value as text (NULL = unset) */
	char **items; /* lists: owned array of owned strings */
	int nitems;
	int64_t i;
	bool b;
	const char *source; /* "default", "file", "env" */
};

struct lt_config {
	char *path; /* the file read, or NULL */
	size_t n;
	struct cval *v;
};

static size_t table_len(void)
{
	size_t n = 0;
	while (lt_cfg_table[n].key)
		n++;
	return n;
}

static int find_key(const char *key)
{
	for (size_t i = 0; lt_cfg_table[i].key; i++)
		if (strcmp(lt_cfg_table[i].key, key) == 0)
			return (int)i;
	return -1;
}

static bool is_list(int type)
{
	return type == LT_CFG_LIST || type == LT_CFG_SECRET_LIST;
}
static bool is_secret(int type)
{
	return type == LT_CFG_SECRET || type == LT_CFG_SECRET_LIST;
}

static const char *type_name(int type)
{
	switch (type) {
	case LT_CFG_STR:
		return "string";
	case LT_CFG_INT:
		return "integer";
	case LT_CFG_BOOL:
		return "boolean";
	case LT_CFG_SECRET:
		return "secret";
	case LT_CFG_LIST:
		return "list";
	case LT_CFG_SECRET_LIST:
		return "secret list";
	}
	return "?";
}

/* The environment variable for table entry d, into out. */
static void env_name(const struct lt_cfg_def *d, char *out, size_t cap)
{
	if (d->env) {
		snprintf(out, cap, "%s", d->env);
		return;
	}
	size_t n = (size_t)snprintf(out, cap, "LIVETAP_");
	for (const char *p = d->key; *p && n + 1 < cap; p++) {
		char ch = *p;
		if (ch == '.' || ch == '-')
			ch = '_';
		else if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		out[n++] = ch;
	}
	out[n] = '\0';
}

static void cval_clear(struct cval *v)
{
	free(v->text);
	v->text = NULL;
	for (int i = 0; i < v->nitems; i++)
		free(v->items[i]);
	free(v->items);
	v->items = NULL;
	v->nitems = 0;
}

static int cfg_fail(struct lt_error *e, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cfg_fail(struct lt_error *e, const char *where, const char *key, const char *fmt, ...)
{
	char problem[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(problem, sizeof problem, fmt, ap);
	va_end(ap);
	lt_error_set(e, LT_ECONFIG, "%s: %s: %s", where, key, problem);
	lt_error_detail(e, "where", where);
	lt_error_detail(e, "key", key);
	return LT_ECONFIG;
}

static char *trim_dup(const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return strndup(s, n);
}

static int list_push(struct cval *v, char *s)
{
	if (!s)
		return LT_ENOMEM;
	char **grown = realloc(v->items, sizeof *grown * (size_t)(v->nitems + 1));
	if (!grown) {
		free(s);
		return LT_ENOMEM;
	}
	v->items = grown;
	v->items[v->nitems++] = s;
	return LT_OK;
}

/*
 * Set entry idx from text (a default, an environment value, or a JSON scalar
 * turned to text). Lists are split at commas, blanks trimmed, empty elements
 * dropped. On error v is left as it was.
 */
static int set_text(struct lt_config *c, size_t idx, const char *text, const char *source, const char *where,
		    struct lt_error *e)
{
	const struct lt_cfg_def *d = &lt_cfg_table[idx];
	struct cval nv = {0};
	nv.source = source;
	if (strlen(text) > CFG_VALUE_MAX)
		return cfg_fail(e, where, d->key, "value longer than %s bytes", "65536");
	if (d->type == LT_CFG_INT) {
		char *end;
		errno = 0;
		long long x = strtoll(text, &end, 10);
		if (errno || end == text || *end)
			return cfg_fail(e, where, d->key, "expected an integer, got '%s'", text);
		if (x < d->min || x > d->max) {
			char range[64];
			snprintf(range, sizeof range, "%" PRId64 "..%" PRId64, d->min, d->max);
			return cfg_fail(e, where, d->key, "%s is out of range %s", text, range);
		}
		nv.i = x;
	} else if (d->type == LT_CFG_BOOL) {
		if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes") ||
		    !strcmp(text, "on"))
			nv.b = true;
		else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no") ||
			 !strcmp(text, "off"))
			nv.b = false;
		else
			return cfg_fail(e, where, d->key, "expected true or false, got '%s'", text);
		text = nv.b ? "true" : "false";
	}
	if (is_list(d->type)) {
		const char *p = text;
		while (*p) {
			const char *comma = strchr(p, ',');
			size_t n = comma ? (size_t)(comma - p) : strlen(p);
			char *item = trim_dup(p, n);
			if (item && !*item) {
				free(item);
			} else if (list_push(&nv, item) != LT_OK) {
				cval_clear(&nv);
				return lt_error_set(e, LT_ENOMEM, "out of memory");
			}
			p += n;
			if (*p == ',')
				p++;
		}
	}
	nv.text = strdup(text);
	if (!nv.text) {
		cval_clear(&nv);
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	}
	cval_clear(&c->v[idx]);
	c->v[idx] = nv;
	return LT_OK;
}

/* Set entry idx from a JSON value of the file, checking its JSON type. */
static int set_json(struct lt_config *c, size_t idx, const cJSON *j, const char *where, struct lt_error *e)
{
	const struct lt_cfg_def *d = &lt_cfg_table[idx];
	const char *got = cJSON_IsString(j)   ? "a string"
			  : cJSON_IsNumber(j) ? "a number"
			  : cJSON_IsBool(j)   ? "a boolean"
			  : cJSON_IsArray(j)  ? "an array"
			  : cJSON_IsObject(j) ? "an object"
					      : "null";
	char num[32];
	switch (d->type) {
	case LT_CFG_STR:
	case LT_CFG_SECRET:
		if (!cJSON_IsString(j))
			return cfg_fail(e, where, d->key, "expected a string, got %s", got);
		return set_text(c, idx, j->valuestring, "file", where, e);
	case LT_CFG_INT:
		if (!cJSON_IsNumber(j))
			return cfg_fail(e, where, d->key, "expected an integer, got %s", got);
		if (j->valuedouble != (double)(long long)j->valuedouble || j->valuedouble > 9.2e18 ||
		    j->valuedouble < -9.2e18) {
			snprintf(num, sizeof num, "%g", j->valuedouble);
			return cfg_fail(e, where, d->key, "expected an integer, got %s", num);
		}
		snprintf(num, sizeof num, "%lld", (long long)j->valuedouble);
		return set_text(c, idx, num, "file", where, e);
	case LT_CFG_BOOL:
		if (!cJSON_IsBool(j))
			return cfg_fail(e, where, d->key, "expected true or false, got %s", got);
		return set_text(c, idx, cJSON_IsTrue(j) ? "true" : "false", "file", where, e);
	default: /* lists: an array of strings, or one comma-separated string */
		if (cJSON_IsString(j))
			return set_text(c, idx, j->valuestring, "file", where, e);
		if (!cJSON_IsArray(j))
			return cfg_fail(e, where, d->key, "expected an array of strings, got %s", got);
		struct cval nv = {0};
		nv.source = "file";
		struct lt_buf joined = LT_BUF_INIT;
		lt_buf_init(&joined, CFG_VALUE_MAX);
		const cJSON *it;
		int rc = LT_OK;
		cJSON_ArrayForEach(it, j)
		{
			if (!cJSON_IsString(it)) {
				rc = cfg_fail(e, where, d->key,
					      "expected an array of strings, found a non-string element");
				break;
			}
			if (!*it->valuestring)
				continue;
			if (list_push(&nv, strdup(it->valuestring)) != LT_OK) {
				rc = lt_error_set(e, LT_ENOMEM, "out of memory");
				break;
			}
			if (nv.nitems > 1)
				lt_buf_putc(&joined, ',');
			lt_buf_puts(&joined, it->valuestring);
		}
		if (rc == LT_OK && lt_buf_err(&joined))
			rc = cfg_fail(e, where, d->key, "value longer than %s bytes", "65536");
		if (rc == LT_OK && !(nv.text = strdup(lt_buf_cstr(&joined))))
			rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		lt_buf_free(&joined);
		if (rc != LT_OK) {
			cval_clear(&nv);
			return rc;
		}
		cval_clear(&c->v[idx]);
		c->v[idx] = nv;
		return LT_OK;
	}
}

/* Levenshtein distance, capped at 99 for long strings. */
static int edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	int row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int diag = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static int unknown_key(const char *where, const char *key, struct lt_error *e)
{
	const char *best = NULL;
	int bestd = 99;
	for (size_t i = 0; lt_cfg_table[i].key; i++) {
		int dd = edit_distance(key, lt_cfg_table[i].key);
		if (dd < bestd) {
			bestd = dd;
			best = lt_cfg_table[i].key;
		}
	}
	int limit = (int)strlen(key) / 3;
	if (limit < 1)
		limit = 1;
	if (limit > 3)
		limit = 3;
	if (best && bestd <= limit)
		return cfg_fail(e, where, key, "unknown setting (did you mean '%s'?)", best);
	return cfg_fail(e, where, key, "unknown setting");
}

/* Walk the file's object: scalars at the top are keys ("state_dir", or a
 * dotted "redis.url"), objects are sections ({"redis":{"url":…}}). */
static int apply_file_obj(struct lt_config *c, const cJSON *root, const char *where, struct lt_error *e)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, root)
	{
		int idx = find_key(it->string);
		if (idx >= 0) {
			int rc = set_json(c, (size_t)idx, it, where, e);
			if (rc)
				return rc;
			continue;
		}
		if (!cJSON_IsObject(it))
			return unknown_key(where, it->string, e);
		const cJSON *sub;
		cJSON_ArrayForEach(sub, it)
		{
			char full[256];
			snprintf(full, sizeof full, "%s.%s", it->string, sub->string);
			int sidx = find_key(full);
			if (sidx < 0)
				return unknown_key(where, full, e);
			int rc = set_json(c, (size_t)sidx, sub, where, e);
			if (rc)
				return rc;
		}
	}
	return LT_OK;
}

static int read_file(const char *path, bool must_exist, char **out, size_t *len, struct lt_error *e)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT && !must_exist) {
			*out = NULL;
			return LT_OK;
		}
		lt_error_set(e, LT_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
		lt_error_detail(e, "where", path);
		return LT_ECONFIG;
	}
	int rc = LT_OK;
	char *data = malloc(CFG_FILE_MAX + 1);
	if (!data) {
		rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		goto out;
	}
	size_t n = fread(data, 1, CFG_FILE_MAX + 1, f);
	if (ferror(f)) {
		rc = lt_error_set(e, LT_ECONFIG, "%s: read failed", path);
		goto out;
	}
	if (n > CFG_FILE_MAX) {
		rc = lt_error_set(e, LT_ECONFIG, "%s: larger than 1 MiB", path);
		goto out;
	}
	data[n] = '\0';
	*out = data;
	*len = n;
	data = NULL;
out:
	free(data);
	fclose(f);
	return rc;
}

static int apply_file(struct lt_config *c, const char *path, bool must_exist, struct lt_error *e)
{
	char *text = NULL;
	size_t len = 0;
	int rc = read_file(path, must_exist, &text, &len, e);
	if (rc || !text)
		return rc;
	cJSON *root = NULL;
	const char *end = NULL;
	root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1); /* + the NUL read_file keeps */
	if (!root) {
		int line = 1, col = 1;
		for (const char *p = text; end && p < end && p < text + len; p++) {
			if (*p == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		rc = lt_error_set(e, LT_ECONFIG, "%s: not valid JSON (line %d, column %d)", path, line, col);
		lt_error_detail(e, "where", path);
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		rc = lt_error_set(e, LT_ECONFIG, "%s: expected a JSON object at the top", path);
		lt_error_detail(e, "where", path);
		goto out;
	}
	if (!(c->path = strdup(path))) {
		rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		goto out;
	}
	rc = apply_file_obj(c, root, path, e);
out:
	cJSON_Delete(root);
	free(text);
	return rc;
}

static const char *env_get(const char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (const char *const *p = envp; p && *p; p++)
		if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

/*
 * A secret's value read from the file named by NAME_FILE (the Docker secrets
 * convention): at most CFG_VALUE_MAX bytes, trailing newlines dropped, and
 * for secret lists newlines count as commas. *out is malloc'd.
 */
static int read_secret_file(const char *path, int type, const char *where, const char *key, char **out,
			    struct lt_error *e)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return cfg_fail(e, where, key, "cannot read '%.200s': %s", path, strerror(errno));
	char *buf = malloc(CFG_VALUE_MAX + 2);
	if (!buf) {
		fclose(f);
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	}
	size_t n = fread(buf, 1, CFG_VALUE_MAX + 1, f);
	fclose(f);
	if (n > CFG_VALUE_MAX) {
		free(buf);
		return cfg_fail(e, where, key, "'%.200s' is longer than 65536 bytes", path);
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	if (type == LT_CFG_SECRET_LIST)
		for (char *p = buf; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ',';
	*out = buf;
	return LT_OK;
}

/* An empty environment value counts as unset. A secret may instead come
 * from a file named by the variable with _FILE appended. */
static int apply_env(struct lt_config *c, const char *const *envp, struct lt_error *e)
{
	if (!envp)
		envp = (const char *const *)environ;
	for (size_t i = 0; i < c->n; i++) {
		char name[128], where[160];
		env_name(&lt_cfg_table[i], name, sizeof name);
		const char *v = env_get(envp, name);
		char *from_file = NULL;
		if ((!v || !*v) && is_secret(lt_cfg_table[i].type)) {
			char fname[140];
			snprintf(fname, sizeof fname, "%s_FILE", name);
			const char *path = env_get(envp, fname);
			if (path && *path) {
				snprintf(where, sizeof where, "environment %s", fname);
				int rc = read_secret_file(path, lt_cfg_table[i].type, where,
							  lt_cfg_table[i].key, &from_file, e);
				if (rc)
					return rc;
				v = from_file;
			}
		} else {
			snprintf(where, sizeof where, "environment %s", name);
		}
		if (!v || !*v) {
			free(from_file);
			continue;
		}
		int rc = set_text(c, i, v, "env", where, e);
		free(from_file);
		if (rc)
			return rc;
	}
	return LT_OK;
}

/* Where entry idx's value came from, for messages: the file, the variable,
 * or the table. */
static void where_of(const struct lt_config *c, size_t idx, char *out, size_t cap)
{
	const char *src = c->v[idx].source;
	if (!strcmp(src, "file") && c->path) {
		snprintf(out, cap, "%s", c->path);
	} else if (!strcmp(src, "env")) {
		char name[128];
		env_name(&lt_cfg_table[idx], name, sizeof name);
		snprintf(out, cap, "environment %s", name);
	} else {
		snprintf(out, cap, "settings table");
	}
}

/* Expand ${key} references in s into out; depth bounds reference chains. */
static int expand_into(const struct lt_config *c, const char *where, const char *key, const char *s,
		       struct lt_buf *out, int depth, struct lt_error *e)
{
	if (depth > CFG_EXPAND_DEPTH)
		return cfg_fail(e, where, key, "${...} references nest too deep (a cycle?)");
	while (*s) {
		const char *ref = strstr(s, "${");
		if (!ref) {
			lt_buf_puts(out, s);
			break;
		}
		lt_buf_append(out, s, (size_t)(ref - s));
		const char *close = strchr(ref + 2, '}');
		if (!close)
			return cfg_fail(e, where, key, "unterminated ${ in '%s'", s);
		char name[128];
		size_t nl = (size_t)(close - ref - 2);
		if (nl >= sizeof name)
			nl = sizeof name - 1;
		memcpy(name, ref + 2, nl);
		name[nl] = '\0';
		int idx = find_key(name);
		if (idx < 0 || is_secret(lt_cfg_table[idx].type) || is_list(lt_cfg_table[idx].type))
			return cfg_fail(e, where, key, "${%s} does not name a plain setting", name);
		const char *val = c->v[idx].text ? c->v[idx].text : "";
		int rc = expand_into(c, where, key, val, out, depth + 1, e);
		if (rc)
			return rc;
		s = close + 1;
	}
	return lt_buf_err(out) ? cfg_fail(e, where, key, "expanded value too long") : LT_OK;
}

static int expand_one(const struct lt_config *c, size_t idx, char **s, struct lt_error *e)
{
	if (!*s || !strstr(*s, "${"))
		return LT_OK;
	struct lt_buf b = LT_BUF_INIT;
	lt_buf_init(&b, CFG_VALUE_MAX);
	char where[160];
	where_of(c, idx, where, sizeof where);
	int rc = expand_into(c, where, lt_cfg_table[idx].key, *s, &b, 0, e);
	if (rc == LT_OK) {
		char *ns = strdup(lt_buf_cstr(&b));
		if (!ns) {
			rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		} else {
			free(*s);
			*s = ns;
		}
	}
	lt_buf_free(&b);
	return rc;
}

/* Expand references in every string and list value (two passes over the
 * table would not be enough for chains; expand_into recurses instead, and the
 * text of referenced values is read unexpanded). */
static int expand_all(struct lt_config *c, struct lt_error *e)
{
	/* Expand into copies first so every reference reads the raw values. */
	int rc = LT_OK;
	char **newtext = calloc(c->n, sizeof *newtext);
	if (!newtext)
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n && rc == LT_OK; i++) {
		int t = lt_cfg_table[i].type;
		if (t != LT_CFG_STR || !c->v[i].text)
			continue;
		if (!(newtext[i] = strdup(c->v[i].text))) {
			rc = lt_error_set(e, LT_ENOMEM, "out of memory");
			break;
		}
		rc = expand_one(c, i, &newtext[i], e);
	}
	for (size_t i = 0; i < c->n && rc == LT_OK; i++) {
		if (lt_cfg_table[i].type != LT_CFG_LIST)
			continue;
		for (int k = 0; k < c->v[i].nitems && rc == LT_OK; k++)
			rc = expand_one(c, i, &c->v[i].items[k], e);
	}
	for (size_t i = 0; i < c->n; i++) {
		if (rc == LT_OK && newtext[i]) {
			free(c->v[i].text);
			c->v[i].text = newtext[i];
		} else {
			free(newtext[i]);
		}
	}
	free(newtext);
	/* A list's text is its items joined again, now expanded. */
	for (size_t i = 0; i < c->n && rc == LT_OK; i++) {
		if (lt_cfg_table[i].type != LT_CFG_LIST || !c->v[i].text || !strstr(c->v[i].text, "${"))
			continue;
		struct lt_buf b = LT_BUF_INIT;
		for (int k = 0; k < c->v[i].nitems; k++) {
			if (k)
				lt_buf_putc(&b, ',');
			lt_buf_puts(&b, c->v[i].items[k]);
		}
		char *ns = lt_buf_err(&b) ? NULL : strdup(lt_buf_cstr(&b));
		lt_buf_free(&b);
		if (!ns)
			rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		else {
			free(c->v[i].text);
			c->v[i].text = ns;
		}
	}
	return rc;
}

/*
 * Load the settings (see config.h). Returns LT_OK and a config the caller
 * frees with lt_config_free, or LT_ECONFIG / LT_ENOMEM with e filled in and
 * *out untouched.
 */
int lt_config_load(const char *path, const char *const *envp, struct lt_config **out, struct lt_error *e)
{
	int rc = LT_OK;
	struct lt_config *c = calloc(1, sizeof *c);
	if (!c)
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	c->n = table_len();
	c->v = calloc(c->n ? c->n : 1, sizeof *c->v);
	if (!c->v) {
		rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < c->n; i++) {
		c->v[i].source = "default";
		if (lt_cfg_table[i].def &&
		    (rc = set_text(c, i, lt_cfg_table[i].def, "default", "settings table", e)))
			goto fail;
	}
	if ((rc = apply_file(c, path ? path : CFG_DEFAULT_PATH, path != NULL, e)))
		goto fail;
	if ((rc = apply_env(c, envp, e)))
		goto fail;
	if ((rc = expand_all(c, e)))
		goto fail;
	*out = c;
	return LT_OK;
fail:
	lt_config_free(c);
	return rc;
}

/* Free c and every string it owns; NULL is fine. */
void lt_config_free(struct lt_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->v && i < c->n; i++)
		cval_clear(&c->v[i]);
	free(c->v);
	free(c->path);
	free(c);
}

static size_t must_find(const char *key, const char *getter, bool ok_type(int))
{
	int idx = find_key(key);
	if (idx < 0) {
		fprintf(stderr, "livetap bug: %s(\"%s\"): no such setting in lt_cfg_table\n", getter, key);
		abort();
	}
	if (ok_type && !ok_type(lt_cfg_table[idx].type)) {
		fprintf(stderr, "livetap bug: %s(\"%s\"): the setting is a %s\n", getter, key,
			type_name(lt_cfg_table[idx].type));
		abort();
	}
	return (size_t)idx;
}

static bool type_str(int t)
{
	return t == LT_CFG_STR || t == LT_CFG_SECRET;
}
static bool type_int(int t)
{
	return t == LT_CFG_INT;
}
static bool type_bool(int t)
{
	return t == LT_CFG_BOOL;
}

/* The string value (owned by c), NULL when unset. Also works for secrets. */
const char *lt_config_str(const struct lt_config *c, const char *key)
{
	return c->v[must_find(key, "lt_config_str", type_str)].text;
}

int64_t lt_config_int(const struct lt_config *c, const char *key)
{
	return c->v[must_find(key, "lt_config_int", type_int)].i;
}

bool lt_config_bool(const struct lt_config *c, const char *key)
{
	return c->v[must_find(key, "lt_config_bool", type_bool)].b;
}

/* The i-th element (owned by c) of a list or secret list; NULL past the end.
 * n (if not NULL) gets the number of elements. */
const char *lt_config_list(const struct lt_config *c, const char *key, int i, int *n)
{
	const struct cval *v = &c->v[must_find(key, "lt_config_list", is_list)];
	if (n)
		*n = v->nitems;
	return i >= 0 && i < v->nitems ? v->items[i] : NULL;
}

const char *lt_config_source(const struct lt_config *c, const char *key)
{
	return c->v[must_find(key, "lt_config_source", NULL)].source;
}

const char *lt_config_path(const struct lt_config *c)
{
	return c->path;
}

/* "key = value  (source)" per setting; secrets as *** (or "(unset)"). */
void lt_config_dump(const struct lt_config *c, struct lt_buf *out)
{
	lt_buf_printf(out, "# config file: %s\n", c->path ? c->path : "(none)");
	for (size_t i = 0; i < c->n; i++) {
		const struct lt_cfg_def *d = &lt_cfg_table[i];
		const struct cval *v = &c->v[i];
		const char *shown = v->text;
		bool empty = !v->text || (is_list(d->type) ? v->nitems == 0 : !*v->text);
		if (is_secret(d->type))
			shown = empty ? "(unset)" : "***";
		else if (!v->text)
			shown = "(unset)";
		else if (!*v->text)
			shown = "\"\"";
		lt_buf_printf(out, "%s = %s  (%s)\n", d->key, shown, v->source);
	}
}

static void md_cell(struct lt_buf *out, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '|')
			lt_buf_puts(out, "\\|");
		else
			lt_buf_putc(out, *s);
	}
}

/* The reference table in Markdown: key, environment, type, default, meaning. */
void lt_config_reference_md(struct lt_buf *out)
{
	lt_buf_puts(out, "| key | environment | type | default | meaning |\n");
	lt_buf_puts(out, "| --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; lt_cfg_table[i].key; i++) {
		const struct lt_cfg_def *d = &lt_cfg_table[i];
		char name[128];
		env_name(d, name, sizeof name);
		lt_buf_printf(out, "| `%s` | `%s` | %s", d->key, name, type_name(d->type));
		if (d->type == LT_CFG_INT)
			lt_buf_printf(out, " (%" PRId64 "..%" PRId64 ")", d->min, d->max);
		lt_buf_puts(out, " | ");
		if (d->def && *d->def) {
			lt_buf_putc(out, '`');
			md_cell(out, d->def);
			lt_buf_putc(out, '`');
		} else {
			lt_buf_puts(out, "(empty)");
		}
		lt_buf_puts(out, " | ");
		md_cell(out, d->help);
		lt_buf_puts(out, " |\n");
	}
}
