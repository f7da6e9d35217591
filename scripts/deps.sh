#!/usr/bin/env bash
# Installs the Debian packages tegami needs to build, run and test, and only the
# missing ones: `apt-get update` runs once, and only when something is missing.
# Usage: scripts/deps.sh [build|test|fuzz|package]   (default: build)
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libevent-dev libssl-dev libsqlite3-dev
            libcrypt-dev libc-ares-dev libjansson-dev libgmime-3.0-dev libcap-dev
            ca-certificates)
# swaks speaks TLS through Net::SSLeay, a package it only recommends: without
# it `swaks --tls` and AUTH under TLS fail on a machine that installs with
# --no-install-recommends (CRAM-MD5 needs Digest::MD5, which perl has).
# Outbound tests run real peers on loopback: dnsmasq answers MX/A/AAAA for
# test domains, Postfix's smtp-sink and Python's aiosmtpd receive.
test_pkgs=(libcmocka-dev python3-pytest swaks libnet-ssleay-perl openssl curl msmtp
           fetchmail getmail6 dnsmasq-base python3-aiosmtpd postfix)
fuzz_pkgs=(clang libclang-rt-14-dev)
# `make deb` and `make deb-test`: debhelper builds the package, lintian checks
# it; the install test serves it to a brand-new Debian as a small apt
# repository (dpkg-scanpackages from dpkg-dev, python3's http.server).
package_pkgs=(debhelper dpkg-dev lintian python3)

want=("${build_pkgs[@]}")
case "${1:-build}" in
    build) ;;
    test) want+=("${test_pkgs[@]}") ;;
    fuzz) want+=("${fuzz_pkgs[@]}") ;;
    package) want+=("${package_pkgs[@]}") ;;
    *) echo "deps.sh: unknown set '$1' (build, test, fuzz or package)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Test tools such as Postfix (for smtp-sink) and dnsmasq ship daemons; the
# tests start their own on loopback, so none is started at install time
# (policy-rc.d, unless the machine already has one).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
