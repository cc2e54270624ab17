#!/usr/bin/env bash
# The test command: bash scripts/test.sh [pytest args...]
#
# Makes sure a PostgreSQL server is there for the Postgres half of the suite,
# then runs `python -m pytest "$@"`:
#   1. WF_TEST_PG_URL already set: use it as is.
#   2. something accepts connections on 127.0.0.1:5432 as user postgres: use it.
#   3. else start a throwaway cluster (Debian's initdb/pg_ctl) in a temporary
#      directory on a free port, and remove it on exit.
#   4. else print one line saying what to install and exit 1.
# WF_TEST_FORCE_THROWAWAY=1 skips 1 and 2 (to test 3); WF_TEST_PG_BINDIR=DIR
# says where initdb and pg_ctl are (default: the newest /usr/lib/postgresql/*/bin).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

PY="${PYTHON:-python}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

pg_accepts() { # URL -> 0 when a trust login works
    "$PY" - "$1" <<'EOF' >/dev/null 2>&1
import sys
import psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
EOF
}

PG_TMP=""
PG_CTL=""
PG_USER=""
cleanup() {
    if [[ -n "$PG_TMP" && -d "$PG_TMP" ]]; then
        as_pg_user "$PG_CTL" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PG_TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg_user() {
    if [[ -z "$PG_USER" ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u "$PG_USER" -- "$@"
    else
        setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --clear-groups -- "$@"
    fi
}

find_bindir() {
    if [[ -n "${WF_TEST_PG_BINDIR:-}" ]]; then
        echo "$WF_TEST_PG_BINDIR"
        return
    fi
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -z "$d" ]] && command -v initdb >/dev/null 2>&1; then
        d="$(dirname "$(command -v initdb)")"
    fi
    echo "$d"
}

start_throwaway() {
    local bindir port
    bindir="$(find_bindir)"
    if [[ -z "$bindir" || ! -x "$bindir/initdb" || ! -x "$bindir/pg_ctl" ]]; then
        return 1
    fi
    PG_CTL="$bindir/pg_ctl"
    if [[ "$(id -u)" == 0 ]]; then # initdb refuses to run as root
        if id postgres >/dev/null 2>&1; then PG_USER=postgres; else PG_USER=nobody; fi
    fi
    PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/wf-test-pg.XXXXXX")" || return 1
    [[ -n "$PG_USER" ]] && chown "$PG_USER" "$PG_TMP"
    port="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    if ! as_pg_user "$bindir/initdb" -D "$PG_TMP/data" -U postgres --auth=trust \
        --encoding=UTF8 --no-sync >"$PG_TMP/initdb.log" 2>&1; then
        echo "scripts/test.sh: initdb failed:" >&2
        cat "$PG_TMP/initdb.log" >&2
        return 2
    fi
    if ! as_pg_user "$PG_CTL" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null 2>&1; then
        echo "scripts/test.sh: the throwaway PostgreSQL did not start:" >&2
        cat "$PG_TMP/server.log" >&2
        return 2
    fi
    export WF_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    echo "scripts/test.sh: started a throwaway PostgreSQL on 127.0.0.1:$port ($PG_TMP)" >&2
}

if [[ "${WF_TEST_FORCE_THROWAWAY:-}" != 1 && -n "${WF_TEST_PG_URL:-}" ]]; then
    : # given by the caller
elif [[ "${WF_TEST_FORCE_THROWAWAY:-}" != 1 ]] && pg_accepts "postgresql://postgres@127.0.0.1:5432/postgres"; then
    export WF_TEST_PG_URL="postgresql://postgres@127.0.0.1:5432/postgres"
else
    start_throwaway
    rc=$?
    if [[ $rc == 1 ]]; then
        echo "scripts/test.sh: no PostgreSQL accepts connections on 127.0.0.1:5432 and initdb/pg_ctl were not found: install it with 'apt-get install postgresql'" >&2
        exit 1
    elif [[ $rc != 0 ]]; then
        exit 1
    fi
fi

# many tests start fresh Python processes (workers, the CLI, crash victims): compile wf's
# modules once, as pip does for an installed package, instead of in every child process
# (PYTHONDONTWRITEBYTECODE=1, set on some machines, stops Python writing them itself)
"$PY" -m compileall -q runtime cli tests >/dev/null || true

"$PY" -m pytest "$@"
exit $?
