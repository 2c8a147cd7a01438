/* SPDX-License-Identifier: MIT */
/*
 * sig: SIGINT/SIGTERM set the stop flag, SIGHUP sets the reload flag, SIGPIPE
 * is ignored. The handler does nothing else: it only stores into lock-free
 * atomics, which is async-signal-safe. Main loops poll the flags.
 */
#include "common/sig.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "common/err.h"

static atomic_int stop_flag;
static atomic_int reload_flag;

static void on_signal(int signo)
{
	if (signo == SIGHUP)
		atomic_store(&reload_flag, 1);
	else
		atomic_store(&stop_flag, 1);
}

/*
 * Install the handlers (SA_RESTART is not set, so a blocking poll returns
 * EINTR and the loop sees the flag at once). Returns LT_OK or LT_EIO if
 * sigaction failed. May be called again; it only reinstalls.
 */
int lt_sig_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGHUP, &sa, NULL) != 0)
		return LT_EIO;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return LT_EIO;
	return LT_OK;
}

/* True once a stop was asked for (by a signal or lt_sig_request_stop). */
bool lt_sig_stop_requested(void)
{
	return atomic_load(&stop_flag) != 0;
}

/* True once per SIGHUP burst; clears the flag. */
bool lt_sig_reload_take(void)
{
	return atomic_exchange(&reload_flag, 0) != 0;
}

/* Ask the main loop to stop; async-signal-safe. */
void lt_sig_request_stop(void)
{
	atomic_store(&stop_flag, 1);
}
