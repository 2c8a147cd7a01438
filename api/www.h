/* SPDX-License-Identifier: MIT */
/*
 * www: the dashboard files and openapi.json, embedded at build time by
 * api/embed.py (see api/meson.build), so the binary serves them without the
 * source tree.
 */
#ifndef LT_WWW_H
#define LT_WWW_H

#include <stddef.h>

struct lt_www_file {
	const char *path;  /* URL path: "/", "/app.js", "/api/v1/openapi.json" */
	const char *ctype; /* Content-Type */
	const unsigned char *data;
	size_t len;
	const char *etag; /* quoted */
};

/* Terminated by path == NULL (generated). */
extern const struct lt_www_file lt_www_files[];

#endif
