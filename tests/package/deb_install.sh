#!/usr/bin/env bash
# deb_install.sh: the Debian package on a brand-new machine (MISSION D2; run
# by `make deb-test`, not by `make test`: it needs root, a chroot and minutes).
#
#   tests/package/deb_install.sh build-deb/tegami_VERSION_ARCH.deb
#
# The brand-new machine is a minimal Debian (minbase) made by the fresh-machine
# runner, a script that lives beside the project's checkout, not in it:
# FRESH_MACHINE=PATH names it; the default is ../shared/tools/fresh-machine
# relative to the project's root. It runs a command in a fresh chroot with the
# project cloned at /project from HEAD, so commit first: the part of this
# script that runs inside is the committed one.
#
# Here, the .deb is served as a one-package apt repository on a loopback port
# (the chroot shares this machine's network), so that the new machine installs
# it as an admin would, `apt-get install tegami`, its dependencies coming from
# Debian. Inside (--inside URL), the script:
#   1. installs tegami and checks the system user, the data directory, the
#      unit and its enablement;
#   2. starts tegamid the way the unit does (no systemd runs in a chroot):
#      the unit's ExecStart as the unit's User and Group with its
#      Environment=, and a NOTIFY_SOCKET whose READY=1 it waits for, as
#      systemd would;
#   3. delivers a message with swaks, adds the user with `tegami` as root
#      meanwhile, reads the message back over POP3 (curl, STLS), reloads with
#      the unit's ExecReload (RELOADING=1, READY=1), stops (STOPPING=1);
#   4. checks the installed unit with systemd-analyze (verify, security);
#   5. purges the package and checks that nothing of it is left (the system
#      user stays, as Debian keeps system users).
set -euo pipefail

say() { echo "deb-install: $*"; }
fail() { echo "deb-install: FAIL: $*" >&2; exit 1; }

# --- inside the new machine ---------------------------------------------------

UNIT=/lib/systemd/system/tegamid.service
WORK=/root/deb-install   # this test's own files (logs)
NOTIFY=/run/deb-install/notify # where the unit's user can reach it, as systemd's
LOG=$WORK/tegamid.log
daemon_pid=
listener_pid=

unit_value() { sed -n "s/^$1=//p" "$UNIT"; }

cleanup_inside() {
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; fi
    if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null || true; fi
}

# A free loopback port: the first in FROM..TO, or any with no arguments. The
# chroot shares this machine's ports, so the defaults (2525...) may be taken.
free_port() {
    perl -MIO::Socket::INET -e '
        for my $p (@ARGV ? ($ARGV[0] .. $ARGV[1]) : (0)) {
            my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                          LocalPort => $p, ReuseAddr => 1) or next;
            print $s->sockport, "\n";
            exit 0;
        }
        exit 1;' "$@"
}

# Prints each datagram that arrives on $NOTIFY as one line (newlines shown as
# '|'), as the service manager would read them; perl is what the new machine
# has.
notify_listen() {
    install -d -m 0755 "$(dirname "$NOTIFY")"
    rm -f "$NOTIFY" "$NOTIFY.log"
    perl -MIO::Socket::UNIX -e '
        $| = 1;
        my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM(), Local => $ARGV[0]) or die "bind: $!";
        while (defined $s->recv(my $m, 4096)) { $m =~ s/\n/|/g; print "$m\n"; }
    ' "$NOTIFY" > "$NOTIFY.log" &
    listener_pid=$!
    for _ in $(seq 1 50); do [ -S "$NOTIFY" ] && break; sleep 0.1; done
    [ -S "$NOTIFY" ] || fail "notify socket did not appear"
    chmod 0777 "$NOTIFY" # as systemd's: any service user may write to it
}

# Waits until the notify log has at least $2 lines matching $1 (an extended regex).
notify_wait() {
    for _ in $(seq 1 150); do
        [ "$(grep -Ec "$1" "$NOTIFY.log")" -ge "${2:-1}" ] && return
        sleep 0.1
    done
    echo "--- notifications:"; cat "$NOTIFY.log"; echo "--- tegamid log:"; cat "$LOG"
    fail "fewer than ${2:-1} notification(s) matching '$1'"
}

# Becomes a command line from the unit as systemd would run it: the unit's
# User and Group, its AmbientCapabilities (and no other capability),
# NoNewPrivileges, its Environment=. It execs: call it in a subshell.
as_unit() {
    local caps envs=()
    caps=$(unit_value AmbientCapabilities | tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_\(.*\)/+\1/p' | paste -sd,)
    while read -r e; do envs+=("$e"); done < <(unit_value Environment)
    exec setpriv --reuid="$(unit_value User)" --regid="$(unit_value Group)" --init-groups \
        --inh-caps="-all,$caps" --ambient-caps="-all,$caps" --bounding-set="-all,$caps" \
        --no-new-privs env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${envs[@]}" \
        NOTIFY_SOCKET="${NOTIFY_SOCKET:-}" "$@"
}

inside_install() {
    local repo=$1
    echo "deb [trusted=yes] $repo ./" > /etc/apt/sources.list.d/tegami-test.list
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends tegami > "$WORK/apt-tegami.log" 2>&1 ||
        { cat "$WORK/apt-tegami.log"; fail "apt-get install tegami"; }
    say "installed: $(dpkg-query -W -f '${Package} ${Version}; depends: ${Depends}' tegami)"
    /usr/sbin/tegamid -V > /dev/null || fail "tegamid does not run (a missing library?)"
    getent passwd tegami > /dev/null || fail "no system user tegami"
    [ "$(stat -c '%U:%G %a' /var/lib/tegami)" = "tegami:tegami 750" ] ||
        fail "/var/lib/tegami is $(stat -c '%U:%G %a' /var/lib/tegami)"
    [ -f "$UNIT" ] || fail "no $UNIT"
    [ -L /etc/systemd/system/multi-user.target.wants/tegamid.service ] ||
        fail "tegamid.service is not enabled"
    say "user tegami, /var/lib/tegami (tegami:tegami 750), $UNIT enabled"
    apt-get install -y -qq --no-install-recommends swaks curl ca-certificates > /dev/null
}

inside_serve() {
    local exec_start exec_reload smtp pop3 uid
    exec_start=$(unit_value ExecStart)
    exec_reload=$(unit_value ExecReload)
    # The admin's first steps, as root (tegami then acts as the directory's
    # owner): listen addresses, SMTP below 1024 to use the unit's capability.
    smtp=$(free_port 600 1000) || fail "no free port below 1024"
    pop3=$(free_port)
    TEGAMI_DATA=/var/lib/tegami tegami config set smtp.listen="127.0.0.1:$smtp" \
        submission.listen="127.0.0.1:$(free_port)" smtps.listen="127.0.0.1:$(free_port)" \
        pop3.listen="127.0.0.1:$pop3" pop3s.listen="127.0.0.1:$(free_port)" > /dev/null
    TEGAMI_DATA=/var/lib/tegami tegami user add alice@example.test --password-stdin <<< "s3cret-pw"

    notify_listen
    # shellcheck disable=SC2086 # the unit's command line, split as systemd does (it has no quotes)
    (NOTIFY_SOCKET=$NOTIFY as_unit $exec_start) > "$LOG" 2>&1 &
    daemon_pid=$!
    notify_wait '^READY=1'
    uid=$(id -u tegami)
    grep -Eq "^Uid:\s+$uid\s+$uid\s+$uid" "/proc/$daemon_pid/status" || fail "tegamid does not run as tegami"
    say "tegamid ready ($exec_start as $(unit_value User), $(grep CapEff "/proc/$daemon_pid/status" | tr -s '\t' ' ')): $(grep -m1 '^READY=1' "$NOTIFY.log")"
    [ -z "$(find /var/lib/tegami ! -user tegami)" ] ||
        fail "files not owned by tegami: $(find /var/lib/tegami ! -user tegami)"

    swaks --server "127.0.0.1:$smtp" --from sender@example.org --to alice@example.test \
        --header "Subject: deb-install" --body "delivered on a brand-new machine" > "$WORK/swaks.log" 2>&1 ||
        { cat "$WORK/swaks.log"; fail "swaks"; }
    say "swaks to port $smtp: $(grep -m1 -- '<-  250 2.0.0' "$WORK/swaks.log")"
    curl -sS -k --ssl-reqd "pop3://127.0.0.1:$pop3/1" -u 'alice@example.test:s3cret-pw' > "$WORK/retr.txt" ||
        fail "curl pop3"
    grep -q "delivered on a brand-new machine" "$WORK/retr.txt" || { cat "$WORK/retr.txt"; fail "message not read back"; }
    say "POP3 (STLS) RETR 1: $(grep -m1 '^Subject:' "$WORK/retr.txt" | tr -d '\r')"
    TEGAMI_DATA=/var/lib/tegami tegami status | sed 's/^/deb-install: status: /'

    # shellcheck disable=SC2086
    (as_unit $exec_reload) > /dev/null
    notify_wait '^RELOADING=1\|MONOTONIC_USEC=[0-9]+$'
    notify_wait '^READY=1' 2
    say "reload ($exec_reload): $(grep -A1 '^RELOADING=1' "$NOTIFY.log" | paste -sd' ')"
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || fail "tegamid exited with $?"
    daemon_pid=
    notify_wait '^STOPPING=1'
    grep -q 'event=stopped' "$LOG" || fail "no event=stopped in the log"
    say "stopped: $(grep '^STOPPING=1' "$NOTIFY.log")"
    kill "$listener_pid" 2>/dev/null || true
    listener_pid=
}

inside_analyze() {
    # systemd-analyze reads units without a running systemd; man-db lets it
    # check the unit's Documentation= pages.
    apt-get install -y -qq --no-install-recommends systemd man-db > "$WORK/apt-systemd.log" 2>&1 ||
        { cat "$WORK/apt-systemd.log"; fail "apt-get install systemd man-db"; }
    systemd-analyze verify tegamid.service || fail "systemd-analyze verify tegamid.service"
    say "systemd-analyze verify tegamid.service: clean"
    local score
    score=$(systemd-analyze security --offline=true --no-pager tegamid.service | tail -n 1)
    say "systemd-analyze security: $score"
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+$/) { exit !($i <= 2.0) } exit 1 }' \
        <<< "$score" || fail "exposure above 2.0"
}

inside_purge() {
    local files
    files=$(dpkg -L tegami)
    apt-get purge -y -qq tegami > "$WORK/apt-purge.log" 2>&1 || { cat "$WORK/apt-purge.log"; fail "purge"; }
    [ -z "$(dpkg-query -W -f '${Status}' tegami 2>/dev/null | grep -v not-installed || true)" ] ||
        fail "dpkg still knows tegami: $(dpkg-query -W -f '${Status}' tegami)"
    [ ! -e /var/lib/tegami ] || fail "/var/lib/tegami survived the purge"
    while read -r f; do
        # Directories like /usr/bin belong to other packages too.
        if [ -e "$f" ] && [ ! -d "$f" ]; then fail "left after purge: $f"; fi
    done <<< "$files"
    # Not counted: this test's apt source and what apt and man-db cache of
    # their own (the .deb downloaded, pages formatted when systemd-analyze
    # checked the unit's Documentation=), which they age out themselves.
    local left
    left=$(find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /project \) -prune -o \
        -name '*tegami*' -print 2>/dev/null | grep -v -e '^/etc/apt/sources.list.d/tegami-test.list$' \
        -e '^/var/lib/apt/lists/' -e '^/var/cache/apt/' -e '^/var/cache/man/' -e "^$WORK/" || true)
    [ -z "$left" ] || fail "left after purge: $left"
    # /proc is this machine's: other programs named tegamid may run outside
    # the chroot; the package's is the one whose executable is (or was)
    # /usr/sbin/tegamid.
    for p in /proc/[0-9]*; do
        case "$(readlink "$p/exe" 2>/dev/null)" in
            /usr/sbin/tegamid*) fail "a tegamid still runs (${p#/proc/})" ;;
        esac
    done
    say "purged: no file, unit link or data left; system user kept: $(getent passwd tegami | cut -d: -f1,3)"
}

inside() {
    mkdir -p "$WORK"
    trap cleanup_inside EXIT
    inside_install "$1"
    inside_serve
    inside_analyze
    inside_purge
    say "PASS"
}

# --- on this machine ----------------------------------------------------------

host() {
    local deb=$1 runner repo port server rc=0
    [ "$(id -u)" -eq 0 ] || fail "run as root (the new machine is a chroot)"
    [ -f "$deb" ] || fail "no package $deb (make deb)"
    cd "$(git rev-parse --show-toplevel)"
    runner=${FRESH_MACHINE:-../shared/tools/fresh-machine}
    [ -x "$runner" ] || fail "fresh-machine runner not found at $runner (set FRESH_MACHINE)"
    if [ -n "$(git status --porcelain -- tests/package)" ]; then
        say "WARNING: tests/package has uncommitted changes; the new machine runs HEAD's"
    fi
    repo=$(mktemp -d /tmp/tegami-deb-repo.XXXXXX)
    cp "$deb" "$repo/"
    (cd "$repo" && dpkg-scanpackages --multiversion . > Packages 2>/dev/null &&
     printf 'Suite: local\nCodename: local\nDate: %s\nSHA256:\n %s %s Packages\n' \
        "$(date -Ru)" "$(sha256sum Packages | cut -d' ' -f1)" "$(stat -c %s Packages)" > Release)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$repo" "$port" > "$repo.http.log" 2>&1 &
    server=$!
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    say "serving $(basename "$deb") at http://127.0.0.1:$port/ to a brand-new Debian ($runner)"
    "$runner" "bash tests/package/deb_install.sh --inside http://127.0.0.1:$port" || rc=$?
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$repo" "$repo.http.log"
    return $rc
}

case "${1:-}" in
    --inside) inside "$2" ;;
    ""|-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    *) host "$1" ;;
esac
