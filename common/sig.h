/* SPDX-License-Identifier: MIT */
/*
 * sig: signal handling that only sets flags.
 *
 * lt_sig_install() makes SIGINT and SIGTERM set the stop flag and SIGHUP set
 * the reload flag, ignores SIGPIPE. Main loops poll lt_sig_stop_requested().
 */
#ifndef LT_SIG_H
#define LT_SIG_H

#include <stdbool.h>

int lt_sig_install(void);
bool lt_sig_stop_requested(void);
/* Returns true once per SIGHUP received (and clears it). */
bool lt_sig_reload_take(void);
/* Ask the loop to stop from code (e.g. a fatal error); async-signal-safe. */
void lt_sig_request_stop(void);

#endif
