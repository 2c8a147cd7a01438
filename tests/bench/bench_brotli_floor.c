/* SPDX-License-Identifier: MIT */
/*
 * bench_brotli_floor: how fast libbrotlidec alone decodes the brotli bodies
 * of a Bilibili capture, the ceiling for `livetap-fetcher --replay --stdout`
 * (issue 4 asks 500,000 messages/s on one core). It reads the capture
 * (fetcher/capture.h), walks each frame's top-level packets (16-byte header,
 * big-endian pack_len), and for every ver 3 body does what the fetcher does
 * and nothing more: a decoder instance per body, DecompressStream with no
 * output buffer, TakeOutput until done. The decoder allocates with malloc
 * here, where the fetcher recycles its blocks (br_alloc), so this ceiling
 * errs low, if anything. The inner packets are only counted
 * (op 5 = one message), not parsed; top-level packets that are not brotli
 * (ver 0 or 2: bench_replay.sh's BENCH_VER) are counted apart and left
 * alone, so give it a ver 3 capture. Run PASSES times (default 3) over the
 * file in memory; prints each pass's messages per CPU second and decoded
 * MB/s. bench_replay.sh runs it on its capture when given its path.
 *
 * With --scan each body's output is also walked packet by packet and every
 * message's JSON passed over once with the fetcher's own scanner
 * (lt_jscan_value: strings closed, brackets matched), as the fetcher has it:
 * in place when the stream came out in one piece, else gathered. That is
 * about the least a decoder must add to brotli: the fields a message maps
 * lie all over it (DANMU_MSG's id_str in info[0][15], its user in info[2],
 * SEND_GIFT's uid at the end), so the fetcher's lazy walk passes over all
 * but a few percent of the text too, before it extracts, unescapes, decodes
 * protobuf, hashes ids or writes anything.
 *
 *   bench_brotli_floor [--scan] CAPTURE [PASSES]
 */
#include <brotli/decode.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "fetcher/capture.h"
#include "fetcher/jscan.h"

#define PKT_HDR 16u

struct frame {
	const uint8_t *p;
	size_t n;
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Count the op-5 packets in decoded bytes (several may span TakeOutput
 * pieces, so the walk keeps the header across them in hdr/have/skip). */
struct walk {
	uint8_t hdr[PKT_HDR];
	size_t have;  /* header bytes gathered */
	uint64_t skip; /* body bytes still to pass over */
	uint64_t msgs;
	int bad;
};

static void walk_bytes(struct walk *w, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (w->skip > 0) {
			size_t k = w->skip < n ? (size_t)w->skip : n;
			w->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		size_t k = PKT_HDR - w->have < n ? PKT_HDR - w->have : n;
		memcpy(w->hdr + w->have, p, k);
		w->have += k;
		p += k;
		n -= k;
		if (w->have < PKT_HDR)
			return;
		uint32_t len = be32(w->hdr);
		if (len < PKT_HDR) {
			w->bad = 1;
			return;
		}
		if (be32(w->hdr + 8) == 5)
			w->msgs++;
		w->skip = len - PKT_HDR;
		w->have = 0;
	}
}

/* --scan: the op-5 packets of one body's whole output, each message's JSON
 * passed over once; their count, -1 on a bad header or a bad message. */
static int64_t scan_packets(const uint8_t *p, size_t n)
{
	int64_t msgs = 0;
	while (n > 0) {
		if (n < PKT_HDR)
			return -1;
		uint32_t len = be32(p);
		if (len < PKT_HDR || len > n)
			return -1;
		if (be32(p + 8) == 5) {
			struct lt_jv v;
			if (lt_jscan_value((const char *)p + PKT_HDR, len - PKT_HDR, &v, NULL) != LT_OK)
				return -1;
			msgs++;
		}
		p += len;
		n -= len;
	}
	return msgs;
}

/* One brotli body b[0..n): decoded, its op-5 packets counted (with scan,
 * each message also scanned); adds the decoded bytes to *bytes. Returns the
 * messages, -1 on a bad stream or packet (or a message that does not scan). */
static int64_t body(const uint8_t *b, size_t n, bool scan, struct lt_buf *gather, uint64_t *bytes)
{
	BrotliDecoderState *s = BrotliDecoderCreateInstance(NULL, NULL, NULL);
	if (!s)
		return -1;
	struct walk w = {0};
	const uint8_t *whole = NULL;
	size_t zero = 0, whole_n = 0;
	BrotliDecoderResult r;
	lt_buf_reset(gather);
	do {
		r = BrotliDecoderDecompressStream(s, &n, &b, &zero, NULL, NULL);
		while (BrotliDecoderHasMoreOutput(s)) {
			size_t k = 0;
			const uint8_t *q = BrotliDecoderTakeOutput(s, &k);
			*bytes += k;
			if (!scan) {
				walk_bytes(&w, q, k);
			} else if (!whole && !gather->len && BrotliDecoderIsFinished(s)) {
				whole = q; /* the whole stream in one piece */
				whole_n = k;
			} else {
				lt_buf_append(gather, q, k);
			}
		}
	} while (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
	if (scan && r == BROTLI_DECODER_RESULT_SUCCESS && !lt_buf_err(gather)) {
		int64_t m = whole ? scan_packets(whole, whole_n) : scan_packets(gather->data, gather->len);
		if (m < 0)
			w.bad = 1;
		else
			w.msgs = (uint64_t)m;
	}
	BrotliDecoderDestroyInstance(s);
	if (r != BROTLI_DECODER_RESULT_SUCCESS || w.bad || lt_buf_err(gather))
		return -1;
	return (int64_t)w.msgs;
}

/* One pass over every frame; returns the messages in brotli bodies, -1 on
 * a bad packet (or with scan, a message that does not scan). */
static int64_t pass(const struct frame *fr, size_t nf, bool scan, struct lt_buf *gather, uint64_t *out_bytes,
                    uint64_t *out_other)
{
	uint64_t msgs = 0, bytes = 0, other = 0;
	for (size_t i = 0; i < nf; i++) {
		const uint8_t *p = fr[i].p;
		size_t n = fr[i].n;
		while (n >= PKT_HDR) {
			uint32_t len = be32(p);
			if (len < PKT_HDR || len > n)
				return -1;
			if (be16(p + 6) == 3 && be32(p + 8) == 5) {
				int64_t m = body(p + PKT_HDR, len - PKT_HDR, scan, gather, &bytes);
				if (m < 0)
					return -1;
				msgs += (uint64_t)m;
			} else {
				other++; /* not brotli: nothing for this bench */
			}
			p += len;
			n -= len;
		}
	}
	*out_bytes = bytes;
	*out_other = other;
	return (int64_t)msgs;
}

int main(int argc, char **argv)
{
	bool scan = argc > 1 && !strcmp(argv[1], "--scan");
	if (scan) {
		argv++;
		argc--;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bench_brotli_floor [--scan] CAPTURE [PASSES]\n");
		return 2;
	}
	int passes = argc == 3 ? atoi(argv[2]) : 3;
	if (passes < 1 || passes > 100) {
		fprintf(stderr, "bench_brotli_floor: PASSES wants 1..100\n");
		return 2;
	}
	struct lt_capture_reader *rd;
	if (lt_capture_reader_open(argv[1], &rd) != LT_OK) {
		fprintf(stderr, "bench_brotli_floor: cannot read %s\n", argv[1]);
		return 1;
	}
	/* Copy the frames out: the reader's buffer is reused per record. */
	struct frame *fr = NULL;
	size_t nf = 0, cap = 0;
	int64_t ms;
	const uint8_t *f;
	size_t fl;
	int rc;
	while ((rc = lt_capture_next(rd, &ms, &f, &fl)) == LT_OK) {
		if (nf == cap) {
			cap = cap ? 2 * cap : 1024;
			struct frame *g = realloc(fr, cap * sizeof(*fr));
			if (!g)
				return 1;
			fr = g;
		}
		uint8_t *c = malloc(fl ? fl : 1);
		if (!c)
			return 1;
		memcpy(c, f, fl);
		fr[nf++] = (struct frame){c, fl};
	}
	lt_capture_reader_close(rd);
	if (rc != LT_EEOF) {
		fprintf(stderr, "bench_brotli_floor: %s: bad capture record after %zu frames\n", argv[1], nf);
		return 1;
	}
	int status = 0;
	struct lt_buf gather;
	lt_buf_init(&gather, 0);
	for (int i = 1; i <= passes; i++) {
		uint64_t bytes = 0, other = 0;
		double t0 = cpu_s();
		int64_t m = pass(fr, nf, scan, &gather, &bytes, &other);
		double t = cpu_s() - t0;
		if (m < 0) {
			fprintf(stderr, "bench_brotli_floor: a bad packet, brotli stream%s in %s\n",
			        scan ? " or message" : "", argv[1]);
			status = 1;
			break;
		}
		if (t <= 0)
			t = 1e-9;
		printf("bench_brotli_floor%s: pass %d: %zu frames, %" PRId64 " messages in brotli bodies"
		       " (%" PRIu64 " other packets skipped), %.1f MB decoded in %.3f s cpu"
		       " -> %.0f msg/s (cpu), %.0f MB/s\n",
		       scan ? " --scan" : "", i, nf, m, other, (double)bytes / 1048576, t, (double)m / t,
		       (double)bytes / 1048576 / t);
	}
	lt_buf_free(&gather);
	for (size_t i = 0; i < nf; i++)
		free((void *)fr[i].p);
	free(fr);
	return status;
}
