#include "lib/workers.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"

struct job {
	struct job *next;
	workers_fn *work;
	workers_fn *done;
	void *arg;
};

struct job_list {
	struct job *head, *tail;
};

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job_list todo;      /* protected by lock */
	struct job_list finished;  /* protected by lock */
	bool stopping;             /* protected by lock */
	atomic_uint pending;
	unsigned nthreads;
	pthread_t *threads;
	int efd;                   /* eventfd: a worker finished something */
	struct event *ev;
};

static void
list_push(struct job_list *l, struct job *j)
{
	j->next = NULL;
	if (l->tail != NULL)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct job *
list_take_all(struct job_list *l)
{
	struct job *h = l->head;

	l->head = l->tail = NULL;
	return h;
}

static void *
worker_main(void *arg)
{
	struct workers *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		struct job *j = w->todo.head;
		if (j == NULL)
			break; /* stopping and nothing left */
		w->todo.head = j->next;
		if (w->todo.head == NULL)
			w->todo.tail = NULL;
		pthread_mutex_unlock(&w->lock);

		j->work(j->arg);

		pthread_mutex_lock(&w->lock);
		bool wake = w->finished.head == NULL;
		list_push(&w->finished, j);
		if (wake) {
			uint64_t one = 1;
			ssize_t n = write(w->efd, &one, sizeof(one));
			(void)n; /* a full counter still wakes the loop */
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void
run_finished(struct workers *w)
{
	pthread_mutex_lock(&w->lock);
	struct job *j = list_take_all(&w->finished);
	pthread_mutex_unlock(&w->lock);

	while (j != NULL) {
		struct job *next = j->next;
		atomic_fetch_sub(&w->pending, 1);
		j->done(j->arg);
		free(j);
		j = next;
	}
}

static void
on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	uint64_t count;
	ssize_t n = read(fd, &count, sizeof(count));

	(void)n;
	run_finished(arg);
}

struct workers *
workers_create(struct event_base *base, unsigned nthreads)
{
	struct workers *w = xcalloc(1, sizeof(*w));

	if (nthreads == 0)
		nthreads = 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0)
		fatal("eventfd");
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_eventfd, w);
	if (w->ev == NULL || event_add(w->ev, NULL) < 0)
		fatalx("workers: cannot watch the eventfd");
	w->nthreads = nthreads;
	w->threads = xcalloc(nthreads, sizeof(*w->threads));
	for (unsigned i = 0; i < nthreads; i++) {
		int err = pthread_create(&w->threads[i], NULL, worker_main, w);
		if (err != 0) {
			errno = err;
			fatal("pthread_create");
		}
	}
	return w;
}

void
workers_submit(struct workers *w, workers_fn *work, workers_fn *done, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->work = work;
	j->done = done;
	j->arg = arg;
	atomic_fetch_add(&w->pending, 1);
	pthread_mutex_lock(&w->lock);
	list_push(&w->todo, j);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

unsigned
workers_pending(const struct workers *w)
{
	return atomic_load(&((struct workers *)w)->pending);
}

void
workers_destroy(struct workers **wp)
{
	struct workers *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	/* Jobs whose done() queues a follow-up job keep the pool busy: drain until
	 * nothing is pending, then stop the threads. */
	while (atomic_load(&w->pending) > 0) {
		run_finished(w);
		if (atomic_load(&w->pending) > 0)
			usleep(1000);
	}
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	event_free(w->ev);
	close(w->efd);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->threads);
	free(w);
}
