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
