#!/bin/bash
# bench/deps.sh - install the Debian packages the benchmark needs, only if missing.
#
# Needs: postfix (the baseline MTA, and its smtp-source load generator),
# python3 (the harness; Debian's /usr/bin/python3, standard library only),
# iproute2 (ss, to show listen backlogs) and procps; with --submission also
# dovecot-core (Postfix's SASL backend: bench/dovecot.sh runs a private
# auth-only instance) and openssl (the Postfix certificate).  Idempotent: runs
# `apt-get update` once and `apt-get install -y` only when something is missing.
# Postfix is preseeded to "No configuration", so installing it starts nothing
# and writes no main.cf; bench/postfix.sh runs its own instance in a temp dir.
# The system-wide Dovecot the package may start is not used (and on a host
# with a policy-rc.d that refuses service starts, it is not started at all).
#
#   deps.sh [--submission]
set -euo pipefail

missing=()
if [ "${1:-}" = --submission ]; then
  [ -x /usr/sbin/dovecot ] && [ -x /usr/bin/doveadm ] || missing+=(dovecot-core)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
fi
[ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/postconf ] || missing+=(postfix)
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v ps >/dev/null 2>&1 || missing+=(procps)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string bench.example.test" | debconf-set-selections
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
