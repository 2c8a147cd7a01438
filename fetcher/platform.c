/* SPDX-License-Identifier: MIT */
/*
 * platform: the registry of platform ops tables. A new platform adds its
 * table to `platforms` below and its declaration to platform.h.
 */
#include "fetcher/platform.h"

#include <string.h>

static const struct lt_platform_ops *const platforms[] = {
	&lt_platform_bilibili,
	&lt_platform_douyin,
	&lt_platform_kook,
};

static const char *const names[] = {
	"bilibili",
	"douyin",
	"kook",
	NULL,
};

const struct lt_platform_ops *lt_platform_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(platforms) / sizeof(platforms[0]); i++)
		if (strcmp(platforms[i]->name, name) == 0)
			return platforms[i];
	return NULL;
}

const char *const *lt_platform_names(void)
{
	return names;
}

bool lt_platform_cookie_get(const char *cookies, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = cookies; p && *p;) {
		while (*p == ' ' || *p == ';' || *p == '\n')
			p++;
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			p += nl + 1;
			size_t n = strcspn(p, ";\n");
			if (!out)
				return n > 0;
			if (n == 0 || n >= cap)
				return false;
			memcpy(out, p, n);
			out[n] = '\0';
			return true;
		}
		p += strcspn(p, ";\n");
	}
	return false;
}
