/* SPDX-License-Identifier: MIT */
/*
 * livetap-emu: a live-stream platform emulator on localhost, for the demo and
 * the end-to-end tests (contract.md). main() parses the flags, picks the
 * platform module and hands over to emu_run().
 */
#include <getopt.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sig.h"
#include "lt_config.h"
#include "tests/emu/emu.h"

static const struct emu_module *const modules[] = {
	&emu_bilibili,
	&emu_douyin,
	&emu_kook,
	NULL,
};

/* --help: usage_head, the --platform line naming the modules, usage_tail. */
static const char usage_head[] =
	"usage: livetap-emu --platform P --listen 127.0.0.1:PORT [options]\n"
	"\n"
	"Serves a live-stream platform's HTTP endpoints and its WebSocket in the\n"
	"platform's real wire format on localhost, from a script or a generated\n"
	"stream, and misbehaves on request. PORT 0 picks a free port; the line\n"
	"'livetap-emu: P listening on HOST:PORT' on stdout names it.\n"
	"\n"
	;
static const char usage_tail[] =
	"  --listen HOST:PORT  where to listen (default 127.0.0.1:0)\n"
	"  --script FILE       JSON Lines of normalized messages to send\n"
	"  --loop              send the script again and again\n"
	"  --generate          plausible Chinese chat, gifts, likes, entries\n"
	"  --rate N            messages per second (default 10)\n"
	"  --duration S        --generate: after S seconds send live_end and stop\n"
	"  --seed K            seed of the generator and the faults (default 1)\n"
	"  --batch-max N       messages per frame at most (default 16)\n"
	"  --drop-every S      close every connection every S seconds\n"
	"  --garbage P         put a corrupted frame before a fraction P of frames\n"
	"  --stall-every S     stop writing every S seconds ...\n"
	"  --stall-for S       ... for S seconds (default 10)\n"
	"  --hb-timeout S      close a connection without heartbeat for S s (60)\n"
	"  --mix-versions      vary packet versions and nesting per frame\n"
	"  --no-mask           do not mask names for anonymous (uid 0) clients\n"
	"  --wbi-rotate S      bilibili: new WBI keys every S seconds (stale keys: -352)\n"
	"  --sent-log FILE     append 'ROOM TYPE MSGID' per message written\n"
	"  --tls-cert FILE     serve HTTPS and WSS with this PEM certificate ...\n"
	"  --tls-key FILE      ... and this PEM private key (both, or neither)\n"
	"  -h, --help          this text\n"
	"  -V, --version       the version\n"
	"\n"
	"HTTP GET /emu/stats answers connections per room and counters.\n";

/* The module names as "a, b or c" on f. */
static void put_platforms(FILE *f)
{
	for (int i = 0; modules[i]; i++)
		fprintf(f, "%s%s", i == 0 ? "" : modules[i + 1] ? ", " : " or ", modules[i]->name);
}

static bool num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (!*s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	enum { O_PLATFORM = 256, O_LISTEN, O_SCRIPT, O_LOOP, O_GENERATE, O_RATE, O_DURATION, O_SEED, O_DROP,
	       O_GARBAGE, O_STALL, O_STALL_FOR, O_SENT, O_MIX, O_NOMASK, O_HB, O_BATCH, O_WBI, O_TLS_CERT,
	       O_TLS_KEY };
	static const struct option lopts[] = {
		{"platform", required_argument, NULL, O_PLATFORM}, {"listen", required_argument, NULL, O_LISTEN},
		{"script", required_argument, NULL, O_SCRIPT},     {"loop", no_argument, NULL, O_LOOP},
		{"generate", no_argument, NULL, O_GENERATE},       {"rate", required_argument, NULL, O_RATE},
		{"duration", required_argument, NULL, O_DURATION}, {"seed", required_argument, NULL, O_SEED},
		{"drop-every", required_argument, NULL, O_DROP},   {"garbage", required_argument, NULL, O_GARBAGE},
		{"stall-every", required_argument, NULL, O_STALL}, {"stall-for", required_argument, NULL, O_STALL_FOR},
		{"sent-log", required_argument, NULL, O_SENT},     {"mix-versions", no_argument, NULL, O_MIX},
		{"no-mask", no_argument, NULL, O_NOMASK},          {"hb-timeout", required_argument, NULL, O_HB},
		{"batch-max", required_argument, NULL, O_BATCH},   {"wbi-rotate", required_argument, NULL, O_WBI},
		{"tls-cert", required_argument, NULL, O_TLS_CERT}, {"tls-key", required_argument, NULL, O_TLS_KEY},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},               {NULL, 0, NULL, 0},
	};
	struct emu_opts o = {.listen_host = "127.0.0.1", .seed = 1};
	const struct emu_module *m = NULL;
	static char host[64];
	double v;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", lopts, NULL)) != -1) {
		const char *bad = NULL;
		switch (c) {
		case 'h':
			fputs(usage_head, stdout);
			fputs("  --platform P        ", stdout);
			put_platforms(stdout);
			fputs("\n", stdout);
			fputs(usage_tail, stdout);
			return 0;
		case 'V':
			printf("livetap-emu %s\nlibwebsockets %s\n", LT_VERSION, lws_get_library_version());
			return 0;
		case O_PLATFORM:
			o.platform = optarg;
			break;
		case O_LISTEN: {
			const char *colon = strrchr(optarg, ':');
			if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof(host) ||
			    !num(colon + 1, 0, 65535, &v)) {
				bad = "--listen wants HOST:PORT";
				break;
			}
			snprintf(host, sizeof(host), "%.*s", (int)(colon - optarg), optarg);
			o.listen_host = host;
			o.port = (int)v;
			break;
		}
		case O_SCRIPT:
			o.script = optarg;
			break;
		case O_TLS_CERT:
			o.tls_cert = optarg;
			break;
		case O_TLS_KEY:
			o.tls_key = optarg;
			break;
		case O_LOOP:
			o.loop = true;
			break;
		case O_GENERATE:
			o.generate = true;
			break;
		case O_RATE:
			if (!num(optarg, 0.001, 1e6, &o.rate))
				bad = "--rate wants a number of messages per second (0.001..1000000)";
			break;
		case O_DURATION:
			if (!num(optarg, 0, 1e7, &v))
				bad = "--duration wants seconds";
			o.duration_s = (int)v;
			break;
		case O_SEED:
			if (!num(optarg, 0, 1e15, &v))
				bad = "--seed wants a non-negative integer";
			o.seed = (uint64_t)v;
			break;
		case O_DROP:
			if (!num(optarg, 0, 1e7, &v))
				bad = "--drop-every wants seconds";
			o.drop_every_s = (int)v;
			break;
		case O_GARBAGE:
			if (!num(optarg, 0, 1, &o.garbage))
				bad = "--garbage wants a fraction between 0 and 1";
			break;
		case O_STALL:
			if (!num(optarg, 0, 1e7, &v))
				bad = "--stall-every wants seconds";
			o.stall_every_s = (int)v;
			break;
		case O_STALL_FOR:
			if (!num(optarg, 1, 1e7, &v))
				bad = "--stall-for wants seconds";
			o.stall_for_s = (int)v;
			break;
		case O_HB:
			if (!num(optarg, 1, 1e7, &v))
				bad = "--hb-timeout wants seconds";
			o.hb_timeout_s = (int)v;
			break;
		case O_BATCH:
			if (!num(optarg, 1, 10000, &v))
				bad = "--batch-max wants 1..10000";
			o.batch_max = (int)v;
			break;
		case O_WBI:
			if (!num(optarg, 0, 1e7, &v))
				bad = "--wbi-rotate wants seconds";
			o.wbi_rotate_s = (int)v;
			break;
		case O_SENT:
			o.sent_log = optarg;
			break;
		case O_MIX:
			o.mix_versions = true;
			break;
		case O_NOMASK:
			o.no_mask = true;
			break;
		case ':':
			fprintf(stderr, "livetap-emu: option '%s' needs an argument (try --help)\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "livetap-emu: unknown option '%s' (try --help)\n", argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "livetap-emu: %s (try --help)\n", bad);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "livetap-emu: unexpected argument '%s' (try --help)\n", argv[optind]);
		return 2;
	}
	for (int i = 0; o.platform && modules[i]; i++)
		if (!strcmp(modules[i]->name, o.platform))
			m = modules[i];
	if (!m) {
		fprintf(stderr, "livetap-emu: --platform %s: not one of: ", o.platform ? o.platform : "(missing)");
		put_platforms(stderr);
		fputs("\n", stderr);
		return 2;
	}
	if (o.script && o.generate) {
		fprintf(stderr, "livetap-emu: --script and --generate exclude each other\n");
		return 2;
	}
	if (!o.tls_cert != !o.tls_key) {
		fprintf(stderr, "livetap-emu: --tls-cert and --tls-key go together\n");
		return 2;
	}
	lt_sig_install();
	return emu_run(m, &o);
}
