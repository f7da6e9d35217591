/* fuzz_spool.c: libFuzzer target for the queue file reader of
 * src/queue/spool.c (MISSION S5, O1-O3). Queue files are ours, but a disk
 * error, an admin's editor or an earlier release can leave anything in
 * one, and tegamid reads every file at start-up: a bad one must be refused
 * with a reason, never crash the daemon or be half understood.
 *
 * Input: the bytes of a queue file. Checked, for every input:
 *   - spool_load with and without the body agree (same envelope, same body
 *     offset) and spool_history reads the same file without error when
 *     spool_load does;
 *   - what loads has a valid queue id, recipients with an address, a state
 *     in range, and a body that is exactly the B octets after the header;
 *   - written back with spool_commit (into a directory under /dev/shm when
 *     there is one) it loads again as the same envelope: sender, DSN
 *     fields, kind, 8-bit mark, each recipient's address, original, NOTIFY,
 *     ORCPT, transport, state, attempts and flags, and the same body.
 * Violations abort, so libFuzzer keeps the input. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mail/envelope.h"
#include "queue/spool.h"

#define FUZZ_INPUT_MAX (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "fuzz_spool: %s\n", #cond); abort(); } } while (0)

static char dir[64];

static bool
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
same_envelope(const struct envelope *a, const struct envelope *b)
{
	CHECK(strcmp(a->qid, b->qid) == 0);
	CHECK(a->arrival == b->arrival);
	CHECK(same_str(a->sender, b->sender));
	CHECK(same_str(a->envid, b->envid));
	CHECK(a->ret == b->ret && a->kind == b->kind && a->eightbit == b->eightbit);
	CHECK(a->nrcpt == b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++) {
		const struct envelope_rcpt *r = &a->rcpts[i], *s = &b->rcpts[i];
		CHECK(same_str(r->addr, s->addr) && same_str(r->orig, s->orig));
		CHECK(same_str(r->orcpt, s->orcpt) && r->notify == s->notify);
		CHECK(r->remote == s->remote && r->state == s->state);
		CHECK(r->attempts == s->attempts && r->flags == s->flags);
	}
}

static void
history_fn(void *arg, size_t idx, const struct envelope_rcpt *r)
{
	const struct envelope *e = arg;

	CHECK(idx < e->nrcpt && r->state <= RCPT_FAILED);
}

static char *
body_bytes(const struct envelope *e, size_t *len_r)
{
	*len_r = evbuffer_get_length(e->body);
	char *p = malloc(*len_r + 1);
	CHECK(p != NULL);
	evbuffer_copyout(e->body, p, *len_r);
	return p;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], qpath[4200];
	const char *err = NULL, *err2 = NULL;
	uint64_t off = 0, off2 = 0;

	if (size > FUZZ_INPUT_MAX)
		return 0;
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s/fuzz_spool.XXXXXX",
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		CHECK(mkdtemp(dir) != NULL);
	}
	int fd = memfd_create("queue-file", MFD_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	struct envelope *e = spool_load(path, true, &off, &err);
	struct envelope *env = spool_load(path, false, &off2, &err2);
	CHECK((e == NULL) == (env == NULL));
	if (e == NULL) {
		CHECK(err != NULL && err2 != NULL);
		close(fd);
		return 0;
	}
	same_envelope(e, env);
	CHECK(off == off2 && off <= size && env->body == NULL);
	CHECK(envelope_qid_valid(e->qid));
	CHECK(e->body != NULL && evbuffer_get_length(e->body) == e->body_size);
	CHECK(off + e->body_size <= size);
	for (size_t i = 0; i < e->nrcpt; i++)
		CHECK(e->rcpts[i].addr != NULL && e->rcpts[i].state <= RCPT_FAILED);
	CHECK(spool_history(path, history_fn, e, &err) == 0);

	/* Written back, it reads as the same message. */
	CHECK(spool_commit(dir, e) == 0);
	spool_path(dir, e->qid, qpath, sizeof(qpath));
	struct envelope *back = spool_load(qpath, true, &off2, &err2);
	if (back == NULL)
		fprintf(stderr, "fuzz_spool: written back, it does not load: %s\n", err2);
	CHECK(back != NULL);
	same_envelope(e, back);
	size_t la, lb;
	char *ba = body_bytes(e, &la), *bb = body_bytes(back, &lb);
	CHECK(la == lb && memcmp(ba, bb, la) == 0);
	free(ba);
	free(bb);
	CHECK(spool_remove(dir, e->qid) == 0);
	envelope_free(&back);
	envelope_free(&env);
	envelope_free(&e);
	close(fd);
	return 0;
}
