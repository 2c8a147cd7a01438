/* SPDX-License-Identifier: MIT */
/*
 * test_processor_bus: the livetap-processor binary on the real bus and the
 * real Redis. A sender (common/delivery.h, as a fetcher uses it) pushes 3000
 * chat messages from 30 users; midway the test kills -9 the processor and
 * starts it again, and (when tests/support/servers.sh started the servers, so
 * LT_SERVERS_DIR is known) restarts Redis too. The sender must get every
 * batch acknowledged, and Redis must then hold exactly 3000 messages: every
 * user's counter, the hot-word count of the planted word and the stream.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "common/clock.h"
#include "common/delivery.h"
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

int main(void)
{
	Suite *s = suite_create("processor_bus");
	TCase *tc = tcase_create("processor_bus");

	lt_test_redis_url();
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, kill_and_restart_lose_nothing_and_count_once);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
