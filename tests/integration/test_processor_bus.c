/* SPDX-License-Identifier: MIT */
/*
 * test_processor_bus: the livetap-processor binary on the real bus and the
 * real Redis. A sender (common/delivery.h, as a fetcher uses it) pushes 3000
 * chat messages from 30 users; midway the test kills -9 the processor and
 * starts it again, and (when tests/support/servers.sh started the servers, so
 * LT_SERVERS_DIR is known) restarts Redis too. The sender must get every
 * batch acknowledged, and Redis must then hold exactly 3000 messages: every
 * user's counter, the hot-word count of the planted word and the stream.
 *
 * resent_copy_acked_without_redis: a copy of a batch the processor applied
 * lately (what a fetcher sends when its ack was late) is acknowledged again
 * without reaching Redis (processor/recent.h). The test deletes the room's
 * keys and markers between the two sends, so a copy that reached Redis would
 * count again and show.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/sub.h>

#include "common/bus.h"
#include "common/clock.h"
#include "common/delivery.h"
#include "common/wire.h"
#include "common/redisconn.h"
#include "tests/support/testsupport.h"

#define USERS 30
#define TOTAL 3000

static pid_t start_processor(const char *listen, const char *dir)
{
	char bin[1024], state[1100];
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/processor/livetap-processor", lt_test_builddir());
	snprintf(state, sizeof(state), "%s", dir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("LIVETAP_PROCESSOR_LISTEN", listen, 1);
		setenv("LIVETAP_STATE_DIR", state, 1);
		setenv("LIVETAP_LOG_LEVEL", "warn", 1);
		setenv("LIVETAP_PROCESSOR_METRICS_LISTEN", "", 1);
		execl(bin, bin, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void restart_redis(void)
{
	const char *dir = getenv("LT_SERVERS_DIR");
	char cmd[2048];

	if (!dir || !*dir)
		return;
	snprintf(cmd, sizeof(cmd), "'%s/tests/support/servers.sh' restart-redis '%s' >/dev/null", lt_test_srcdir(),
		 dir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(kill_and_restart_lose_nothing_and_count_once)
{
	char *dir = lt_test_tmpdir("procbus");
	char listen[1200], spool[1200], room[64], src[80], key[160];
	const char *procs[1];
	struct lt_delivery_opts o = {0};
	struct lt_delivery *d = NULL;
	struct lt_error e = {0};
	redisContext *c = NULL;
	pid_t pid;
	int64_t now = lt_clock_wall_ms();
	long long sum = 0;

	snprintf(listen, sizeof(listen), "ipc://%s/p.ipc", dir);
	snprintf(spool, sizeof(spool), "%s/spool", dir);
	snprintf(room, sizeof(room), "bus%d%lld", (int)getpid(), (long long)(now % 1000000));
	snprintf(src, sizeof(src), "bilibili:%s", room);
	procs[0] = listen;
	o.source_id = src;
	o.processors = procs;
	o.n_processors = 1;
	o.spool_dir = spool;
	o.batch_max = 100;
	o.ack_timeout_ms = 300;
	o.ack_timeout_max_ms = 1000;
	ck_assert_msg(lt_delivery_open(&o, &d, &e) == LT_OK, "delivery: %s", e.message);
	pid = start_processor(listen, dir);

	for (int i = 0; i < TOTAL; i++) {
		struct lt_msg m = {0};
		char id[32], uid[16], text[64];
		snprintf(id, sizeof(id), "bus-%d", i);
		snprintf(uid, sizeof(uid), "u%d", i % USERS);
		snprintf(text, sizeof(text), "plantedword 第%d条 破防了", i);
		m.platform = LT_PLATFORM_BILIBILI;
		m.type = LT_MSG_CHAT;
		m.ts = now + i;
		m.room = lt_str_c(room);
		m.msg_id = lt_str_c(id);
		m.user_id = lt_str_c(uid);
		m.user_name = lt_str_c(uid);
		m.content = lt_str_c(text);
		while (lt_delivery_push(d, &m) == LT_EAGAIN)
			usleep(1000);
		if (i == TOTAL / 3) {
			usleep(300000);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			usleep(200000);
			pid = start_processor(listen, dir);
		}
		if (i == 2 * TOTAL / 3)
			restart_redis();
		if (i % 100 == 0)
			usleep(2000);
	}
	ck_assert_msg(lt_delivery_drain(d, 90000) == LT_OK, "not every batch was acknowledged");
	lt_delivery_close(d);

	ck_assert_int_eq(lt_redis_connect(lt_test_redis_url(), 2000, &c, NULL), LT_OK);
	for (int u = 0; u < USERS; u++) {
		redisReply *r = redisCommand(c, "HGET live:{bilibili:%s}:user:u%d messages", room, u);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
		ck_assert_int_eq(atoll(r->str), TOTAL / USERS);
		sum += atoll(r->str);
		freeReplyObject(r);
	}
	ck_assert_int_eq(sum, TOTAL);
	{
		redisReply *r = redisCommand(c, "ZSCORE live:{bilibili:%s}:hotwords:30m plantedword", room);
		ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
		ck_assert_int_eq(atoll(r->str), TOTAL);
		freeReplyObject(r);
		snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", room);
		r = redisCommand(c, "XLEN %s", key);
		ck_assert_int_eq(r->integer, TOTAL);
		freeReplyObject(r);
	}
	redisFree(c);
	{
		/* the processor's peak RSS, for the record (ASan builds inflate it) */
		char path[64], line[128];
		FILE *f;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		if ((f = fopen(path, "r")) != NULL) {
			while (fgets(line, sizeof(line), f))
				if (strncmp(line, "VmHWM:", 6) == 0)
					printf("livetap-processor peak RSS after %d messages: %s", TOTAL, line + 6);
			fclose(f);
		}
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(dir);
}
END_TEST

/* Send batch seq of src (5 chats of user u1) and wait for the ack. */
static void send_and_wait_ack(nng_socket push, nng_socket sub, const char *src, const char *room, uint64_t seq)
{
	struct lt_buf b = {0};
	int64_t now = lt_clock_wall_ms();

	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, src, seq), LT_OK);
	for (int i = 0; i < 5; i++) {
		struct lt_msg m = {0};
		char id[32];
		snprintf(id, sizeof(id), "copy-%d", i);
		m.platform = LT_PLATFORM_BILIBILI;
		m.type = LT_MSG_CHAT;
		m.ts = now + i;
		m.room = lt_str_c(room);
		m.msg_id = lt_str_c(id);
		m.user_id = lt_str_c("u1");
		m.user_name = lt_str_c("u1");
		m.content = lt_str_c("再来一次");
		ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_OK);
	}
	for (int tries = 0;; tries++) {
		int64_t until = lt_clock_mono_ms() + 2000;
		bool acked = false;
		ck_assert_msg(tries < 15, "no ack for seq %llu", (unsigned long long)seq);
		ck_assert_int_eq(nng_send(push, b.data, b.len, 0), 0);
		while (!acked && lt_clock_mono_ms() < until) {
			char *msg = NULL;
			size_t n = 0;
			if (nng_recv(sub, &msg, &n, NNG_FLAG_ALLOC) != 0)
				continue; /* the receive timeout */
			/* an ack list (common/bus.h): "\0" then the list */
			struct lt_wire_batch h;
			if (n > 1 && msg[0] == 0 && lt_wire_batch_decode((const uint8_t *)msg + 1, n - 1, &h) == LT_OK &&
			    h.kind == LT_WIRE_KIND_ACKS) {
				struct lt_wire_acks_iter it;
				const char *s;
				size_t sl;
				uint64_t q;
				lt_wire_acks_iter_init(&it, &h);
				while (lt_wire_acks_next(&it, &s, &sl, &q) == LT_OK)
					if (sl == strlen(src) && !memcmp(s, src, sl) && q == seq)
						acked = true;
			}
			nng_free(msg, n);
		}
		if (acked)
			break;
	}
	lt_buf_free(&b);
}

static long long redis_int(redisContext *c, const char *fmt, const char *room)
{
	redisReply *r = redisCommand(c, fmt, room);
	long long v;

	ck_assert_ptr_nonnull(r);
	v = r->type == REDIS_REPLY_INTEGER ? r->integer : r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
	freeReplyObject(r);
	return v;
}

/* Delete every key of the room, markers included. */
static void forget_room(redisContext *c, const char *room)
{
	redisReply *r = redisCommand(c, "EVAL %s 0 live:{bilibili:%s}:*",
				     "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end", room);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_ne(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

START_TEST(resent_copy_acked_without_redis)
{
	char *dir = lt_test_tmpdir("proccopy");
	char listen[1200], *ack_url, src[96];
	const char *room = "copytest1";
	nng_socket push, sub;
	redisContext *c = NULL;
	pid_t pid;

	snprintf(listen, sizeof(listen), "ipc://%s/p.ipc", dir);
	snprintf(src, sizeof(src), "bilibili:%s#0", room);
	ack_url = lt_bus_ack_url(listen);
	ck_assert_ptr_nonnull(ack_url);
	ck_assert_int_eq(lt_redis_connect(lt_test_redis_url(), 2000, &c, NULL), LT_OK);
	forget_room(c, room);
	pid = start_processor(listen, dir);
	ck_assert_int_eq(nng_push0_open(&push), 0);
	ck_assert_int_eq(nng_sub0_open(&sub), 0);
	ck_assert_int_eq(nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "", 1), 0);
	ck_assert_int_eq(nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 100), 0);
	ck_assert_int_eq(nng_socket_set_ms(push, NNG_OPT_SENDTIMEO, 5000), 0);
	ck_assert_int_eq(nng_dial(push, listen, NULL, NNG_FLAG_NONBLOCK), 0);
	ck_assert_int_eq(nng_dial(sub, ack_url, NULL, NNG_FLAG_NONBLOCK), 0);

	send_and_wait_ack(push, sub, src, room, 7);
	ck_assert_int_eq(redis_int(c, "HGET live:{bilibili:%s}:user:u1 messages", room), 5);
	/* forget everything Redis knows of the room, markers included */
	forget_room(c, room);
	ck_assert_int_eq(redis_int(c, "EXISTS live:{bilibili:%s}:user:u1", room), 0);
	/* the same batch again: acked, and Redis does not see it */
	send_and_wait_ack(push, sub, src, room, 7);
	ck_assert_int_eq(redis_int(c, "EXISTS live:{bilibili:%s}:user:u1", room), 0);
	/* a new seq with the same records does reach Redis (markers gone) */
	send_and_wait_ack(push, sub, src, room, 8);
	ck_assert_int_eq(redis_int(c, "HGET live:{bilibili:%s}:user:u1 messages", room), 5);

	nng_close(push);
	nng_close(sub);
	redisFree(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(ack_url);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("processor_bus");
	TCase *tc = tcase_create("processor_bus");

	lt_test_redis_url();
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, kill_and_restart_lose_nothing_and_count_once);
	tcase_add_test(tc, resent_copy_acked_without_redis);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
