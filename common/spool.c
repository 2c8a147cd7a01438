/* SPDX-License-Identifier: MIT */
/*
 * spool: append-only segment files of CRC-checked records (see spool.h).
 *
 * In memory the spool keeps one small entry per segment (id, size, live
 * record count), sorted by id; the active segment keeps its file open for
 * appends, and one more descriptor is cached for reads.
 */
#include "common/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#define SEG_MAGIC    "LTSPOOL1"
#define SEG_HDR	     8u
#define REC_HDR	     8u
#define SEG_NAME_LEN 24 /* 20 digits + ".seg" */

struct seg {
	uint64_t id;
	uint64_t bytes;
	uint64_t live;
};

struct lt_spool {
	char *dir;
	struct lt_spool_opts o;
	struct seg *segs; /* sorted by id */
	size_t nsegs, capsegs;
	int wfd;      /* active segment (segs[nsegs-1]) or -1 */
	uint64_t wid; /* its id, 0 if none */
	int rfd;      /* cached read descriptor */
	int lockfd;   /* dir/.lock, flock'ed while open */
	uint64_t rid;
	uint64_t next_id;
	struct lt_spool_stats st;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc_of(const void *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);
	const uint8_t *b = p;
	while (n > 0) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
		c = crc32(c, b, k);
		b += k;
		n -= k;
	}
	return (uint32_t)c;
}

static void seg_path(const struct lt_spool *s, uint64_t id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%020" PRIu64 ".seg", s->dir, id);
}

static int mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return LT_ENOMEM;
	int rc = LT_OK;
	for (char *q = p + 1;; q++) {
		if (*q == '/' || *q == '\0') {
			char c = *q;
			*q = '\0';
			if (mkdir(p, 0700) != 0 && errno != EEXIST) {
				rc = LT_EIO;
				break;
			}
			*q = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

static size_t seg_find(const struct lt_spool *s, uint64_t id)
{
	size_t lo = 0, hi = s->nsegs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->segs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nsegs && s->segs[lo].id == id ? lo : SIZE_MAX;
}

static int seg_push(struct lt_spool *s, uint64_t id, uint64_t bytes)
{
	if (s->nsegs == s->capsegs) {
		size_t ncap = s->capsegs ? s->capsegs * 2 : 16;
		struct seg *n = realloc(s->segs, ncap * sizeof(*n));
		if (!n)
			return LT_ENOMEM;
		s->segs = n;
		s->capsegs = ncap;
	}
	s->segs[s->nsegs++] = (struct seg){id, bytes, 0};
	return LT_OK;
}

/* Delete segment i (file and entry). */
static void seg_drop(struct lt_spool *s, size_t i)
{
	char path[4096];
	uint64_t id = s->segs[i].id;
	if (s->rid == id && s->rfd >= 0) {
		close(s->rfd);
		s->rfd = -1;
		s->rid = 0;
	}
	if (s->wid == id && s->wfd >= 0) {
		close(s->wfd);
		s->wfd = -1;
		s->wid = 0;
	}
	seg_path(s, id, path, sizeof(path));
	unlink(path);
	s->st.bytes -= s->segs[i].bytes;
	s->st.deleted_segments++;
	memmove(&s->segs[i], &s->segs[i + 1], (s->nsegs - i - 1) * sizeof(s->segs[0]));
	s->nsegs--;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Parse "NNNNNNNNNNNNNNNNNNNN.seg"; true with *id on success. */
static bool parse_seg_name(const char *name, uint64_t *id)
{
	if (strlen(name) != SEG_NAME_LEN || strcmp(name + 20, ".seg") != 0)
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		uint64_t dgt = (uint64_t)(name[i] - '0');
		if (v > (UINT64_MAX - dgt) / 10)
			return false;
		v = v * 10 + dgt;
	}
	*id = v;
	return v != 0;
}

static int list_segments(const char *dir, uint64_t **ids, size_t *n)
{
	DIR *dp = opendir(dir);
	if (!dp)
		return LT_EIO;
	uint64_t *v = NULL;
	size_t cnt = 0, cap = 0;
	int rc = LT_OK;
	struct dirent *de;
	while ((de = readdir(dp)) != NULL) {
		uint64_t id;
		if (!parse_seg_name(de->d_name, &id))
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, ncap * sizeof(*nv));
			if (!nv) {
				rc = LT_ENOMEM;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt++] = id;
	}
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_u64);
out:
	closedir(dp);
	if (rc != LT_OK) {
		free(v);
		return rc;
	}
	*ids = v;
	*n = cnt;
	return LT_OK;
}

static bool read_full(int fd, void *p, size_t n, off_t off)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = pread(fd, b, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b += r;
		n -= (size_t)r;
		off += r;
	}
	return true;
}

/* Scan one segment file: hand valid records to fn, truncate a corrupt tail,
 * register the segment (or delete it when nothing in it is kept). */
static int scan_segment(struct lt_spool *s, uint64_t id, lt_spool_recover_fn fn, void *ctx)
{
	char path[4096];
	seg_path(s, id, path, sizeof(path));
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return LT_EIO;
	int rc = LT_OK;
	uint8_t *data = NULL;
	size_t datacap = 0;
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		rc = LT_EIO;
		goto out;
	}
	uint64_t size = (uint64_t)sb.st_size;
	uint64_t good = 0, live = 0;
	uint8_t hdr[SEG_HDR];
	if (size >= SEG_HDR && read_full(fd, hdr, SEG_HDR, 0) && memcmp(hdr, SEG_MAGIC, SEG_HDR) == 0) {
		good = SEG_HDR;
		while (good + REC_HDR <= size) {
			uint8_t rh[REC_HDR];
			if (!read_full(fd, rh, REC_HDR, (off_t)good))
				break;
			uint32_t len = get32(rh), crc = get32(rh + 4);
			if (len > LT_SPOOL_RECORD_MAX || good + REC_HDR + len > size || good > UINT32_MAX)
				break;
			if (len > datacap) {
				uint8_t *nd = realloc(data, len);
				if (!nd) {
					rc = LT_ENOMEM;
					goto out;
				}
				data = nd;
				datacap = len;
			}
			if (!read_full(fd, data, len, (off_t)(good + REC_HDR)) || crc_of(data, len) != crc)
				break;
			struct lt_spool_pos pos = {id, (uint32_t)good, len};
			if (!fn || fn(ctx, &pos, data, len)) {
				live++;
				s->st.recovered++;
			}
			good += REC_HDR + len;
		}
	}
	if (good < size) {
		/* A torn or corrupt tail: cut it off so appends never follow garbage. */
		s->st.corrupt++;
		s->st.truncated_bytes += size - good;
		if (ftruncate(fd, (off_t)good) != 0) {
			rc = LT_EIO;
			goto out;
		}
		size = good;
	}
	if (live == 0) {
		unlink(path);
		s->st.deleted_segments++;
		goto out;
	}
	rc = seg_push(s, id, size);
	if (rc == LT_OK) {
		s->segs[s->nsegs - 1].live = live;
		s->st.bytes += size;
		s->st.live += live;
	}
out:
	free(data);
	close(fd);
	return rc;
}

int lt_spool_open(const char *dir, const struct lt_spool_opts *o, lt_spool_recover_fn fn, void *ctx,
		  struct lt_spool **out, struct lt_error *e)
{
	uint64_t *ids = NULL;
	size_t nids = 0;
	int rc;
	if (!dir || !*dir || !out)
		return lt_error_set(e, LT_EINVAL, "spool: no directory given");
	struct lt_spool *s = calloc(1, sizeof(*s));
	if (!s)
		return lt_error_set(e, LT_ENOMEM, "spool: out of memory");
	s->wfd = -1;
	s->rfd = -1;
	s->lockfd = -1;
	if (o)
		s->o = *o;
	if (s->o.segment_bytes == 0)
		s->o.segment_bytes = 4u << 20;
	if (s->o.max_bytes == 0)
		s->o.max_bytes = (size_t)1 << 30;
	s->dir = strdup(dir);
	if (!s->dir) {
		rc = lt_error_set(e, LT_ENOMEM, "spool: out of memory");
		goto fail;
	}
	rc = mkdir_p(dir);
	if (rc != LT_OK) {
		rc = lt_error_set(e, rc, "spool: cannot create %s: %s", dir, strerror(errno));
		goto fail;
	}
	/* One process per spool: a second fetcher for the same source (a hung
	 * one not yet gone) must not interleave segments with this one. The lock
	 * dies with the process, even on kill -9. */
	{
		size_t n = strlen(dir) + 8;
		char *lp = malloc(n);
		if (!lp) {
			rc = lt_error_set(e, LT_ENOMEM, "spool: out of memory");
			goto fail;
		}
		snprintf(lp, n, "%s/.lock", dir);
		s->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		free(lp);
		if (s->lockfd < 0) {
			rc = lt_error_set(e, LT_EIO, "spool: cannot create the lock in %s: %s", dir,
					  strerror(errno));
			goto fail;
		}
		if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
			rc = lt_error_set(e, errno == EWOULDBLOCK ? LT_EEXIST : LT_EIO,
					  "spool: %s is in use by another process", dir);
			goto fail;
		}
	}
	rc = list_segments(dir, &ids, &nids);
	if (rc != LT_OK) {
		rc = lt_error_set(e, rc, "spool: cannot read %s: %s", dir, strerror(errno));
		goto fail;
	}
	s->next_id = nids ? ids[nids - 1] + 1 : 1;
	for (size_t i = 0; i < nids; i++) {
		rc = scan_segment(s, ids[i], fn, ctx);
		if (rc != LT_OK) {
			rc = lt_error_set(e, rc, "spool: cannot scan segment %" PRIu64 " in %s", ids[i], dir);
			goto fail;
		}
	}
	s->st.segments = s->nsegs;
	free(ids);
	*out = s;
	return LT_OK;
fail:
	free(ids);
	lt_spool_close(s);
	return rc;
}

/* Start a new active segment; the previous one is deleted if nothing in it
 * is live any more. */
static int roll(struct lt_spool *s)
{
	char path[4096];
	if (s->wfd >= 0) {
		close(s->wfd);
		s->wfd = -1;
		size_t i = seg_find(s, s->wid);
		s->wid = 0;
		if (i != SIZE_MAX && s->segs[i].live == 0)
			seg_drop(s, i);
	}
	uint64_t id = s->next_id;
	seg_path(s, id, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return LT_EIO;
	ssize_t w = write(fd, SEG_MAGIC, SEG_HDR);
	if (w != (ssize_t)SEG_HDR || seg_push(s, id, SEG_HDR) != LT_OK) {
		close(fd);
		unlink(path);
		return LT_EIO;
	}
	if (s->o.fsync) {
		int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	s->next_id++;
	s->wfd = fd;
	s->wid = id;
	s->st.bytes += SEG_HDR;
	return LT_OK;
}

int lt_spool_append(struct lt_spool *s, const void *data, size_t len, struct lt_spool_pos *pos)
{
	if (len > LT_SPOOL_RECORD_MAX)
		return LT_ETOOBIG;
	uint64_t need = REC_HDR + (uint64_t)len;
	bool must_roll = s->wfd < 0;
	if (!must_roll) {
		struct seg *a = &s->segs[s->nsegs - 1];
		must_roll = a->bytes > SEG_HDR && a->bytes + need > s->o.segment_bytes;
	}
	uint64_t after = s->st.bytes + need + (must_roll ? SEG_HDR : 0);
	if (after > s->o.max_bytes)
		return LT_EAGAIN;
	if (must_roll) {
		int rc = roll(s);
		if (rc != LT_OK)
			return rc;
	}
	struct seg *a = &s->segs[s->nsegs - 1];
	if (a->bytes + need > UINT32_MAX)
		return LT_ETOOBIG;
	uint8_t hdr[REC_HDR];
	put32(hdr, (uint32_t)len);
	put32(hdr + 4, crc_of(data, len));
	struct iovec iov[2] = {{hdr, REC_HDR}, {(void *)(uintptr_t)data, len}};
	size_t done = 0;
	while (done < need) {
		/* writev once; finish a short write with plain writes. */
		ssize_t w;
		if (done == 0)
			w = writev(s->wfd, iov, 2);
		else if (done < REC_HDR)
			w = write(s->wfd, hdr + done, REC_HDR - done);
		else
			w = write(s->wfd, (const uint8_t *)data + (done - REC_HDR), need - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (ftruncate(s->wfd, (off_t)a->bytes) != 0) {
				/* The tail stays torn; the next open truncates it. */
			}
			return LT_EIO;
		}
		done += (size_t)w;
	}
	if (s->o.fsync)
		fdatasync(s->wfd);
	*pos = (struct lt_spool_pos){a->id, (uint32_t)a->bytes, (uint32_t)len};
	a->bytes += need;
	a->live++;
	s->st.bytes += need;
	s->st.live++;
	s->st.appends++;
	s->st.segments = s->nsegs;
	return LT_OK;
}

int lt_spool_read(struct lt_spool *s, const struct lt_spool_pos *pos, uint8_t *dst)
{
	if (seg_find(s, pos->seg) == SIZE_MAX)
		return LT_ENOTFOUND;
	if (s->rfd < 0 || s->rid != pos->seg) {
		char path[4096];
		if (s->rfd >= 0)
			close(s->rfd);
		seg_path(s, pos->seg, path, sizeof(path));
		s->rfd = open(path, O_RDONLY | O_CLOEXEC);
		s->rid = s->rfd >= 0 ? pos->seg : 0;
		if (s->rfd < 0)
			return LT_EIO;
	}
	uint8_t hdr[REC_HDR];
	if (!read_full(s->rfd, hdr, REC_HDR, (off_t)pos->off) ||
	    !read_full(s->rfd, dst, pos->len, (off_t)pos->off + REC_HDR))
		return LT_EIO;
	if (get32(hdr) != pos->len || get32(hdr + 4) != crc_of(dst, pos->len))
		return LT_EPROTO;
	s->st.reads++;
	return LT_OK;
}

void lt_spool_release(struct lt_spool *s, const struct lt_spool_pos *pos)
{
	size_t i = seg_find(s, pos->seg);
	if (i == SIZE_MAX || s->segs[i].live == 0)
		return;
	s->segs[i].live--;
	s->st.live--;
	if (s->segs[i].live == 0 && s->segs[i].id != s->wid)
		seg_drop(s, i);
	s->st.segments = s->nsegs;
}

void lt_spool_stats(const struct lt_spool *s, struct lt_spool_stats *out)
{
	*out = s->st;
	out->segments = s->nsegs;
}

void lt_spool_close(struct lt_spool *s)
{
	if (!s)
		return;
	if (s->wfd >= 0) {
		/* An active segment with nothing live is not worth keeping. */
		size_t i = seg_find(s, s->wid);
		if (i != SIZE_MAX && s->segs[i].live == 0)
			seg_drop(s, i);
		else
			close(s->wfd);
	}
	if (s->rfd >= 0)
		close(s->rfd);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	free(s->segs);
	free(s->dir);
	free(s);
}

char *lt_spool_dir_for(const char *base, const char *source_id)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t bl = strlen(base), sl = strlen(source_id);
	char *p = malloc(bl + 1 + sl * 3 + 1);
	if (!p)
		return NULL;
	memcpy(p, base, bl);
	size_t k = bl;
	p[k++] = '/';
	for (size_t i = 0; i < sl; i++) {
		unsigned char c = (unsigned char)source_id[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		    c == '-') {
			p[k++] = (char)c;
		} else {
			p[k++] = '%';
			p[k++] = hex[c >> 4];
			p[k++] = hex[c & 15];
		}
	}
	p[k] = '\0';
	return p;
}
