#include "auth/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/directory.h"
#include "conf/settings.h"
#include "lib/log.h"
#include "lib/password.h"
#include "lib/strutil.h"
#include "lib/workers.h"
#include "lib/xmalloc.h"
#include "mail/sasl.h"

#define CACHE_BUCKETS 4096
#define CACHE_MAX 20000
#define HASH_MAX 256

struct cache_entry {
	struct cache_entry *next;
	char user[SASL_NAME_MAX + 1];
	unsigned char stored[32]; /* SHA-256 of the stored hash it was verified against */
	unsigned char mac[32];    /* HMAC(key, password) */
	time_t expires;
};

struct auth_service {
	struct event_base *base;
	struct workers *workers;
	struct directory *dir;
	const struct config *cfg;
	unsigned char key[32];
	char *dummy_hash;  /* of a random password: what unknown users are checked against */
	char dummy_cram[CRAM_MD5_SECRET_LEN + 1];
	struct cache_entry *cache[CACHE_BUCKETS];
	size_t ncache;
};

struct auth_request {
	struct auth_service *a;
	auth_result_fn *done_result; /* one of the two is set */
	auth_done_fn *done;
	void *arg;
	bool cancelled;
	bool dummy;                  /* checked against the dummy hash: never ok */
	enum auth_result result;
	char user[SASL_NAME_MAX + 1];
	char password[SASL_SECRET_MAX + 1];
	char hash[HASH_MAX];
};

struct auth_service *
auth_service_create(struct event_base *base, struct workers *workers, struct directory *dir,
    const struct config *cfg)
{
	struct auth_service *a = xcalloc(1, sizeof(*a));

	a->base = base;
	a->workers = workers;
	a->dir = dir;
	a->cfg = cfg;
	if (RAND_bytes(a->key, sizeof(a->key)) != 1)
		fatalx("RAND_bytes failed");
	/* A hash made the way every stored one is (same scheme, same cost). */
	char random[33];
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		fatalx("RAND_bytes failed");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(random + 2 * i, 3, "%02x", raw[i]);
	if ((a->dummy_hash = password_hash(random)) == NULL)
		fatal("cannot make the dummy password hash");
	cram_md5_secret(random, a->dummy_cram);
	OPENSSL_cleanse(random, sizeof(random));
	return a;
}

void
auth_service_flush(struct auth_service *a)
{
	for (int i = 0; i < CACHE_BUCKETS; i++) {
		while (a->cache[i] != NULL) {
			struct cache_entry *next = a->cache[i]->next;
			OPENSSL_cleanse(a->cache[i], sizeof(*a->cache[i]));
			free(a->cache[i]);
			a->cache[i] = next;
		}
	}
	a->ncache = 0;
}

void
auth_service_destroy(struct auth_service **ap)
{
	struct auth_service *a = *ap;

	if (a == NULL)
		return;
	auth_service_flush(a);
	OPENSSL_cleanse(a->key, sizeof(a->key));
	free(a->dummy_hash);
	free(a);
	*ap = NULL;
}

static unsigned
bucket_of(const char *user)
{
	unsigned h = 2166136261u;

	for (const char *p = user; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % CACHE_BUCKETS;
}

static void
digests(struct auth_service *a, const char *hash, const char *password,
    unsigned char stored[32], unsigned char mac[32])
{
	unsigned int len = 32;

	EVP_Digest(hash, strlen(hash), stored, NULL, EVP_sha256(), NULL);
	HMAC(EVP_sha256(), a->key, sizeof(a->key), (const unsigned char *)password,
	    strlen(password), mac, &len);
}

static bool
cache_hit(struct auth_service *a, const char *user, const char *hash, const char *password)
{
	unsigned char stored[32], mac[32];
	time_t now = time(NULL);

	if (a->cfg->auth_cache_ttl == 0)
		return false;
	for (struct cache_entry *e = a->cache[bucket_of(user)]; e != NULL; e = e->next) {
		if (strcmp(e->user, user) != 0 || e->expires <= now)
			continue;
		digests(a, hash, password, stored, mac);
		bool ok = password_equal(stored, e->stored, 32) && password_equal(mac, e->mac, 32);
		OPENSSL_cleanse(mac, sizeof(mac));
		return ok;
	}
	return false;
}

static void
cache_put(struct auth_service *a, const char *user, const char *hash, const char *password)
{
	struct cache_entry **pp = &a->cache[bucket_of(user)];
	struct cache_entry *e;

	if (a->cfg->auth_cache_ttl == 0)
		return;
	for (e = *pp; e != NULL && strcmp(e->user, user) != 0; e = e->next)
		;
	if (e == NULL) {
		if (a->ncache >= CACHE_MAX)
			auth_service_flush(a); /* bounded: start over rather than grow */
		pp = &a->cache[bucket_of(user)];
		e = xcalloc(1, sizeof(*e));
		str_copy(e->user, user, sizeof(e->user));
		e->next = *pp;
		*pp = e;
		a->ncache++;
	}
	digests(a, hash, password, e->stored, e->mac);
	e->expires = time(NULL) + (time_t)a->cfg->auth_cache_ttl;
}

static void
request_free(struct auth_request *req)
{
	OPENSSL_cleanse(req, sizeof(*req));
	free(req);
}

static void
request_finish(struct auth_request *req)
{
	if (!req->cancelled) {
		if (req->done_result != NULL)
			req->done_result(req->arg, req->result);
		else
			req->done(req->arg, req->result == AUTH_OK);
	}
	request_free(req);
}

static void
noop_work(void *arg)
{
}

static void
deferred_done(void *arg)
{
	request_finish(arg);
}

/* Answers later on the loop, as the contract promises. Through the worker
 * pool so that a shutdown drains it like any other job. */
static void
finish_soon(struct auth_request *req, enum auth_result result)
{
	req->result = result;
	workers_submit(req->a->workers, noop_work, deferred_done, req);
}

static void
verify_work(void *arg)
{
	struct auth_request *req = arg;
	bool ok = password_verify(req->hash, req->password);

	req->result = ok && !req->dummy ? AUTH_OK : AUTH_FAILED;
}

static void
verify_done(void *arg)
{
	struct auth_request *req = arg;

	if (req->result == AUTH_OK)
		cache_put(req->a, req->user, req->hash, req->password);
	request_finish(req);
}

/* CRAM-MD5 (on the loop: one HMAC). An unknown user's digest is checked
 * against a dummy secret all the same. */
static void
check_cram(struct auth_request *req, const struct sasl_exchange *x, int found, char *cram)
{
	struct auth_service *a = req->a;
	bool known = found == 1 && cram[0] != '\0';
	bool ok = cram_md5_verify(known ? cram : a->dummy_cram, x->challenge, x->digest);

	if (found == 1 && cram[0] == '\0' && a->cfg->auth_cram_md5)
		finish_soon(req, AUTH_MECH_WEAK); /* RFC 4954 §6: 534 for this user */
	else
		finish_soon(req, known && ok && a->cfg->auth_cram_md5 ? AUTH_OK : AUTH_FAILED);
}

/* PLAIN and LOGIN: the slow hash on a worker, for known and unknown users
 * alike, unless the cache knows this password. */
static void
check_password(struct auth_request *req, const struct sasl_exchange *x, int found)
{
	struct auth_service *a = req->a;

	str_copy(req->password, x->password, sizeof(req->password));
	if (found != 1 || req->hash[0] == '\0') {
		req->dummy = true;
		str_copy(req->hash, a->dummy_hash, sizeof(req->hash));
	} else if (cache_hit(a, req->user, req->hash, req->password)) {
		finish_soon(req, AUTH_OK);
		return;
	}
	workers_submit(a->workers, verify_work, verify_done, req);
}

static struct auth_request *
request_start(struct auth_service *a, const struct sasl_exchange *x, struct auth_request *req)
{
	char cram[128];

	req->a = a;
	str_copy(req->user, x->authcid, sizeof(req->user));
	int found = x->authzid_mismatch ? 0 : directory_user_credentials(a->dir, x->authcid,
	    req->hash, sizeof(req->hash), cram, sizeof(cram));
	if (found < 0) {
		log_error("event=auth_lookup_failed user=%s", x->authcid);
		finish_soon(req, AUTH_TEMPFAIL);
	} else if (x->mech == SASL_MECH_CRAM_MD5) {
		check_cram(req, x, found, cram);
	} else {
		check_password(req, x, found);
	}
	OPENSSL_cleanse(cram, sizeof(cram));
	return req;
}

struct auth_request *
auth_check(struct auth_service *a, const struct sasl_exchange *x, auth_result_fn *done,
    void *arg)
{
	struct auth_request *req = xcalloc(1, sizeof(*req));

	req->done_result = done;
	req->arg = arg;
	return request_start(a, x, req);
}

struct auth_request *
auth_verify(struct auth_service *a, const struct sasl_exchange *x, auth_done_fn *done, void *arg)
{
	struct auth_request *req = xcalloc(1, sizeof(*req));

	req->done = done;
	req->arg = arg;
	return request_start(a, x, req);
}

void
auth_request_cancel(struct auth_request *req)
{
	req->cancelled = true;
}
