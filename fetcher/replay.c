/* SPDX-License-Identifier: MIT */
/*
 * replay: decode a capture file with a platform's ops and hand the messages
 * on (see replay.h). stdout output is collected in one buffer and written in
 * 256 KB chunks; the delivery path retries a refused push (window full)
 * after a millisecond, so the replay goes as fast as the pipeline accepts.
 */
#include "fetcher/replay.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/delivery.h"
#include "common/json.h"
#include "common/sig.h"
#include "fetcher/capture.h"

#define OUT_CHUNK (256u << 10)

struct ctx {
	const struct lt_replay_opts *o;
	struct lt_replay_stats *st;
	struct lt_buf out;
	int err; /* first output error */
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !lt_sig_stop_requested())
		;
}

static int flush_out(struct ctx *x)
{
	if (x->out.len && fwrite(x->out.data, 1, x->out.len, x->o->out) != x->out.len)
		return LT_EIO;
	lt_buf_reset(&x->out);
	return LT_OK;
}

static void on_msg(void *ud, const struct lt_msg *m)
{
	struct ctx *x = ud;

	if (x->err)
		return;
	if (x->o->out) {
		lt_json_msg(&x->out, m);
		lt_buf_putc(&x->out, '\n');
		if (lt_buf_err(&x->out)) {
			x->err = lt_buf_err(&x->out);
			return;
		}
		x->st->messages++;
		if (x->out.len >= OUT_CHUNK && flush_out(x) != LT_OK)
			x->err = LT_EIO;
		return;
	}
	for (;;) {
		int rc = lt_delivery_push(x->o->delivery, m);
		if (rc == LT_OK) {
			x->st->messages++;
			return;
		}
		if (rc != LT_EAGAIN || lt_sig_stop_requested()) {
			if (rc == LT_EINVAL)
				x->st->bad_messages++; /* a record that cannot be encoded: skipped */
			else
				x->err = rc;
			return;
		}
		x->st->push_retries++;
		sleep_ms(1);
	}
}

/* Replies the protocol would send (heartbeats after auth): nobody to send to. */
static void on_send(void *ud, const void *p, size_t n, bool text)
{
	(void)ud, (void)p, (void)n, (void)text;
}

int lt_replay_run(const struct lt_replay_opts *o, struct lt_replay_stats *st, struct lt_error *e)
{
	struct lt_capture_reader *r = NULL;
	struct lt_platform_conn *c = NULL;
	struct ctx x = {.o = o, .st = st};
	struct lt_platform_io io = {.emit = on_msg, .send = on_send, .ud = &x};
	int64_t first_rec = 0, first_mono = 0;
	int rc;

	memset(st, 0, sizeof(*st));
	lt_buf_init(&x.out, 0);
	if (!o->out && !o->delivery) {
		rc = lt_error_set(e, LT_EINVAL, "replay: neither an output nor a delivery");
		goto out;
	}
	if ((rc = lt_capture_reader_open(o->path, &r)) != LT_OK) {
		lt_error_set(e, rc, "%s: %s", o->path, strerror(errno));
		goto out;
	}
	if ((rc = o->ops->create(o->conf, &c)) != LT_OK) {
		lt_error_set(e, rc, "%s: bad settings for room %s: %s", o->ops->name,
		             o->conf->room ? o->conf->room : "(none)", lt_strerror(rc));
		goto out;
	}
	for (;;) {
		int64_t recv_ms;
		const uint8_t *frame;
		size_t len;
		unsigned ev;

		if (lt_sig_stop_requested()) {
			rc = lt_error_set(e, LT_ECLOSED, "stopped after %llu frames", (unsigned long long)st->frames);
			goto out;
		}
		rc = lt_capture_next(r, &recv_ms, &frame, &len);
		if (rc == LT_EEOF)
			break;
		if (rc == LT_EPROTO) {
			/* a partial last record: a recorder killed mid-write */
			st->truncated = true;
			break;
		}
		if (rc != LT_OK) {
			lt_error_set(e, rc, "%s: unreadable record at byte %llu", o->path,
			             (unsigned long long)lt_capture_reader_offset(r));
			goto out;
		}
		if (o->pace) {
			if (st->frames == 0) {
				first_rec = recv_ms;
				first_mono = lt_clock_mono_ms();
			} else {
				int64_t due = first_mono + (recv_ms - first_rec);
				int64_t now = lt_clock_mono_ms();
				if (due > now)
					sleep_ms(due - now);
			}
		}
		st->frames++;
		o->ops->on_frame(c, frame, len, recv_ms, &io, &ev);
		if (x.err) {
			rc = lt_error_set(e, x.err, "writing messages: %s", lt_strerror(x.err));
			goto out;
		}
	}
	if (o->out) {
		if (flush_out(&x) != LT_OK || fflush(o->out) != 0) {
			rc = lt_error_set(e, LT_EIO, "writing messages: %s", strerror(errno));
			goto out;
		}
		rc = LT_OK;
		goto out;
	}
	rc = lt_delivery_drain(o->delivery, o->drain_timeout_ms > 0 ? o->drain_timeout_ms : 30000);
	if (rc != LT_OK) {
		struct lt_delivery_stats ds;
		lt_delivery_stats(o->delivery, &ds);
		st->pending = ds.pending_records + ds.open_records;
		lt_error_set(e, rc, "%llu of %llu records not acknowledged (%llu batches pending)",
		             (unsigned long long)st->pending, (unsigned long long)st->messages,
		             (unsigned long long)ds.pending_batches);
	}
out:
	if (c) {
		struct lt_platform_stats ps;
		o->ops->stats(c, &ps);
		st->bad_frames = ps.bad_frames;
		st->bad_messages += ps.bad_messages;
	}
	o->ops->destroy(c);
	lt_capture_reader_close(r);
	lt_buf_free(&x.out);
	return rc;
}
