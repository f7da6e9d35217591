#include "lib/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

int
privdrop_plan(struct privdrop *p, const char *dir, char *err, size_t errsize)
{
	struct stat st;

	memset(p, 0, sizeof(*p));
	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			return 0; /* made by whoever runs us now */
		snprintf(err, errsize, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errsize, "%s: not a directory", dir);
		return -1;
	}
	p->uid = st.st_uid;
	p->gid = st.st_gid;
	struct passwd *pw = getpwuid(st.st_uid);
	if (pw != NULL && strlen(pw->pw_name) < sizeof(p->name)) {
		snprintf(p->name, sizeof(p->name), "%s", pw->pw_name);
		p->gid = pw->pw_gid; /* the user's own group, as login would */
		p->named = true;
	} else {
		snprintf(p->name, sizeof(p->name), "%lu", (unsigned long)st.st_uid);
	}
	p->active = geteuid() == 0 && st.st_uid != 0;
	return 0;
}

/* The owner's groups: from its passwd entry, else its own group alone. */
static int
owner_groups(const struct privdrop *p)
{
	return p->named ? initgroups(p->name, p->gid) : setgroups(1, &p->gid);
}

/* Real and effective ids and the groups are the owner's (so that signals,
 * group permissions and symlinks planted by the owner give nothing more than
 * the owner has); only the saved ids stay root's, to come back. */
int
privdrop_as_owner(const struct privdrop *p, char *err, size_t errsize)
{
	if (!p->active || p->dropped)
		return 0;
	if (owner_groups(p) < 0 || setresgid(p->gid, p->gid, 0) < 0 ||
	    setresuid(p->uid, p->uid, 0) < 0) {
		snprintf(err, errsize, "cannot act as %s: %s", p->name, strerror(errno));
		return -1;
	}
	return 0;
}

int
privdrop_as_root(const struct privdrop *p, char *err, size_t errsize)
{
	static const gid_t root_group = 0;

	if (!p->active || p->dropped)
		return 0;
	if (setresuid(0, 0, 0) < 0 || setresgid(0, 0, 0) < 0 || setgroups(1, &root_group) < 0) {
		snprintf(err, errsize, "cannot return to root: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The calling thread keeps CAP_NET_BIND_SERVICE, effective, and nothing else. */
static int
keep_bind_capability(char *err, size_t errsize)
{
	cap_value_t bind = CAP_NET_BIND_SERVICE;
	cap_t caps = cap_init();
	int rc = -1;

	if (caps == NULL)
		goto out;
	if (cap_set_flag(caps, CAP_PERMITTED, 1, &bind, CAP_SET) < 0 ||
	    cap_set_flag(caps, CAP_EFFECTIVE, 1, &bind, CAP_SET) < 0 || cap_set_proc(caps) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		snprintf(err, errsize, "cannot keep CAP_NET_BIND_SERVICE: %s", strerror(errno));
	if (caps != NULL)
		cap_free(caps);
	return rc;
}

int
privdrop_final(struct privdrop *p, bool keep_bind, char *err, size_t errsize)
{
	if (!p->active || p->dropped)
		return 0;
	if (privdrop_as_root(p, err, errsize) < 0)
		return -1;
	if (keep_bind && prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) < 0) {
		snprintf(err, errsize, "prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
		return -1;
	}
	if (owner_groups(p) < 0 || setgid(p->gid) < 0 || setuid(p->uid) < 0) {
		snprintf(err, errsize, "cannot become %s (uid %lu): %s", p->name,
		    (unsigned long)p->uid, strerror(errno));
		return -1;
	}
	if (keep_bind) {
		if (keep_bind_capability(err, errsize) < 0)
			return -1;
		prctl(PR_SET_KEEPCAPS, 0L, 0L, 0L, 0L);
	}
	if (setuid(0) == 0 || seteuid(0) == 0 || getuid() != p->uid || geteuid() != p->uid) {
		snprintf(err, errsize, "still able to regain root after becoming %s", p->name);
		return -1;
	}
	p->dropped = true;
	return 0;
}
