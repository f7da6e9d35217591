#!/usr/bin/env bash
# Fails when src/ uses a function STYLE forbids (unbounded or unsafe string
# and number handling). Run by `make build`, so a violation fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok)[[:space:]]*\('
if hits=$(grep -rnE "$banned" src --include='*.c' --include='*.h'); then
    echo "checksrc: banned functions in src/ (use snprintf, str_copy, str_parse_u64, strtok_r…):" >&2
    echo "$hits" >&2
    exit 1
fi
