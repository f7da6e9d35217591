/* test_sdnotify.c: src/lib/sdnotify.c, against a datagram socket bound here
 * as the service manager's would be: a path, and an abstract name. */
#include "test_util.h"

#include <sys/socket.h>
#include <sys/un.h>

#include "lib/sdnotify.h"

/* A datagram socket bound to name: a path, or "@..." for an abstract name. */
static int
manager_bind(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(len < sizeof(sa.sun_path));
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
	return fd;
}

/* The next datagram on fd, as a string (fails the test after a second). */
static void
manager_recv(int fd, char *buf, size_t size)
{
	struct timeval tv = { 1, 0 };

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	ssize_t n = recv(fd, buf, size - 1, 0);
	assert_true(n >= 0);
	buf[n] = '\0';
}

static void
test_no_manager(void **state)
{
	char err[256] = "";

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sdnotify_init(err, sizeof(err)), 0);
	assert_false(sdnotify_enabled());
	assert_int_equal(sdnotify_send("READY=1"), 0); /* nothing to do, no error */
	assert_int_equal(sdnotify_reloading(), 0);
}

static void
test_path_socket(void **state)
{
	char *dir = test_mkdtemp(), path[4200], got[4096], err[256];
	int fd;

	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = manager_bind(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sdnotify_init(err, sizeof(err)), 1);
	assert_null(getenv("NOTIFY_SOCKET")); /* not passed on to anything we start */
	assert_true(sdnotify_enabled());
	assert_int_equal(sdnotify_send("READY=1\nSTATUS=ok"), 0);
	manager_recv(fd, got, sizeof(got));
	assert_string_equal(got, "READY=1\nSTATUS=ok");
	assert_int_equal(sdnotify_sendf("STATUS=%d sessions", 3), 0);
	manager_recv(fd, got, sizeof(got));
	assert_string_equal(got, "STATUS=3 sessions");
	assert_int_equal(sdnotify_reloading(), 0);
	manager_recv(fd, got, sizeof(got));
	assert_true(strncmp(got, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
	assert_true(strlen(got) > 27 && strspn(got + 27, "0123456789") == strlen(got + 27));
	sdnotify_close();
	assert_false(sdnotify_enabled());
	assert_int_equal(sdnotify_send("STOPPING=1"), 0);
	close(fd);
	test_rm_rf(dir);
	free(dir);
}

static void
test_abstract_socket(void **state)
{
	char name[64], got[4096], err[256];
	int fd;

	snprintf(name, sizeof(name), "@tegami-test-sdnotify-%ld", (long)getpid());
	fd = manager_bind(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sdnotify_init(err, sizeof(err)), 1);
	assert_int_equal(sdnotify_send("STOPPING=1"), 0);
	manager_recv(fd, got, sizeof(got));
	assert_string_equal(got, "STOPPING=1");
	sdnotify_close();
	close(fd);
}

static void
test_unusable_variable(void **state)
{
	char err[256], longname[300];

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(sdnotify_init(err, sizeof(err)), -1);
	assert_non_null(strstr(err, "relative/path"));
	assert_false(sdnotify_enabled());
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(sdnotify_init(err, sizeof(err)), -1);
	assert_false(sdnotify_enabled());
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(sdnotify_init(err, sizeof(err)), -1);
	assert_int_equal(sdnotify_send("READY=1"), 0);
}

static void
test_manager_gone(void **state)
{
	char *dir = test_mkdtemp(), path[4200], err[256];

	snprintf(path, sizeof(path), "%s/notify", dir);
	setenv("NOTIFY_SOCKET", path, 1); /* nothing bound there */
	assert_int_equal(sdnotify_init(err, sizeof(err)), 1);
	assert_int_equal(sdnotify_send("READY=1"), -1);
	sdnotify_close();
	test_rm_rf(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_manager),
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_unusable_variable),
		cmocka_unit_test(test_manager_gone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
