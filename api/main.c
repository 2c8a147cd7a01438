/* SPDX-License-Identifier: MIT */
/*
 * livetap-api: the REST API, the live WebSocket feed, /metrics, /healthz
 * and the dashboard, on libwebsockets. main() is the short script: settings,
 * auth, the server, the loop, teardown in reverse.
 */
#include <stdio.h>

#include "api/auth.h"
#include "api/http.h"
#include "common/app.h"
#include "common/log.h"

static const struct lt_app_spec spec = {
    "livetap-api",
    "Serves livetap's REST API under /api/v1, a live WebSocket feed per room, /metrics, /healthz "
    "and the dashboard at /, on api.listen (default 127.0.0.1:8080). Reads go to Redis first and "
    "PostgreSQL for older data; writes need an API key (api.keys) or an admin token from "
    "POST /api/v1/auth/login (LIVETAP_ADMIN_PASSWORD).",
    NULL,
    NULL,
};

int main(int argc, char **argv)
{
	struct lt_app *app = lt_app_start(&spec, argc, argv);
	const struct lt_config *cfg = lt_app_config(app);
	struct lt_error e = {0};
	struct lt_auth *auth = NULL;
	struct lt_http *http = NULL;
	int rc = 1;

	if (lt_auth_new(cfg, &auth, &e) != LT_OK) {
		fprintf(stderr, "livetap-api: %s\n", e.message);
		goto out;
	}
	if (lt_http_start(cfg, auth, &http, &e) != LT_OK) {
		fprintf(stderr, "livetap-api: %s\n", e.message);
		goto out;
	}
	lt_info(NULL, "listening on port %d", lt_http_port(http));
	rc = lt_http_run(http) == LT_OK ? 0 : 1;
out:
	lt_http_free(http);
	lt_auth_free(auth);
	return lt_app_finish(app, rc);
}
