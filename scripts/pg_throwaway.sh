#!/usr/bin/env bash
# Throwaway PostgreSQL + PostGIS cluster for tests.
#
# Sourced (as scripts/test.sh does):
#     source scripts/pg_throwaway.sh
#     pg_throwaway_start          # exports CMM_GEO_TEST_DATABASE_URL
#     trap pg_throwaway_stop EXIT
#
# By hand:
#     bash scripts/pg_throwaway.sh start        # prints the URL, runs until Ctrl-C, then cleans up
#     bash scripts/pg_throwaway.sh run -- CMD…  # starts, runs CMD with the URL exported, stops;
#                                               # exits with CMD's exit code
#
# The cluster lives in a fresh temp dir (mktemp under ${TMPDIR:-/tmp}), owned by the `postgres`
# OS user when run as root (root cannot run postgres), listens only on 127.0.0.1 on a free port,
# trusts every local connection, has fsync etc. turned off, and holds one database
# `cmm_geo_test` with the postgis extension created. pg_throwaway_stop stops it (immediate
# shutdown) and deletes the directory; it is idempotent.
#
# Exported after pg_throwaway_start:
#     CMM_GEO_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:<port>/cmm_geo_test
#     PG_THROWAWAY_DIR, PG_THROWAWAY_PORT, PG_THROWAWAY_PSQL_URL (same URL, plain postgresql://)
# Optional input: PG_THROWAWAY_VERSION=<major> to choose the PostgreSQL major version.
#
# Sourcing this file does not change the caller's shell options.

_pgt_log() { printf '[pg_throwaway] %s\n' "$*" >&2; }

# Print the major version whose initdb and postgis extension are both installed (highest wins).
pg_throwaway_version() {
    local v best=""
    if [[ -n "${PG_THROWAWAY_VERSION:-}" ]]; then
        echo "$PG_THROWAWAY_VERSION"
        return 0
    fi
    # shellcheck disable=SC2012
    for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -V); do
        if [[ -x "/usr/lib/postgresql/$v/bin/initdb" && -f "/usr/share/postgresql/$v/extension/postgis.control" ]]; then
            best="$v"
        fi
    done
    [[ -n "$best" ]] || return 1
    echo "$best"
}

# Run a command as the OS user that owns the cluster (postgres when we are root).
_pgt_as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd "$PG_THROWAWAY_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_THROWAWAY_DIR" && "$@")
    fi
}

_pgt_free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

pg_throwaway_start() {
    local ver bin port attempt started=0 t0 t1
    t0=$(date +%s%N)
    if [[ -n "${PG_THROWAWAY_DIR:-}" && -d "${PG_THROWAWAY_DIR}" ]]; then
        _pgt_log "already running in $PG_THROWAWAY_DIR"
        return 0
    fi
    if ! ver=$(pg_throwaway_version); then
        _pgt_log "ERROR: no PostgreSQL with PostGIS found (need /usr/lib/postgresql/<ver>/bin/initdb and postgresql-<ver>-postgis-3)"
        return 1
    fi
    bin="/usr/lib/postgresql/$ver/bin"
    if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        _pgt_log "ERROR: running as root but there is no 'postgres' OS user to run the server"
        return 1
    fi

    PG_THROWAWAY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cmm-geo-pg.XXXXXX") || return 1
    export PG_THROWAWAY_DIR
    chmod 700 "$PG_THROWAWAY_DIR"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown postgres:postgres "$PG_THROWAWAY_DIR"
    fi

    _pgt_log "initdb (PostgreSQL $ver) in $PG_THROWAWAY_DIR/data"
    if ! _pgt_as_owner "$bin/initdb" -D "$PG_THROWAWAY_DIR/data" -U postgres --auth=trust \
            --no-locale -E UTF8 --no-sync >"$PG_THROWAWAY_DIR/initdb.log" 2>&1; then
        _pgt_log "ERROR: initdb failed:"
        cat "$PG_THROWAWAY_DIR/initdb.log" >&2
        pg_throwaway_stop
        return 1
    fi

    for attempt in 1 2 3 4 5; do
        port=$(_pgt_free_port) || { pg_throwaway_stop; return 1; }
        if _pgt_as_owner "$bin/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -l "$PG_THROWAWAY_DIR/server.log" \
                -w -t 60 -s \
                -o "-F -p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_THROWAWAY_DIR -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200 -c max_locks_per_transaction=256" \
                start >/dev/null 2>&1; then
            started=1
            break
        fi
        _pgt_log "start on port $port failed (attempt $attempt); server log tail:"
        tail -n 5 "$PG_THROWAWAY_DIR/server.log" >&2 || true
    done
    if [[ $started -ne 1 ]]; then
        _pgt_log "ERROR: could not start the cluster"
        pg_throwaway_stop
        return 1
    fi
    export PG_THROWAWAY_PORT="$port"

    local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
    if ! "${psql[@]}" -d postgres -c "CREATE DATABASE cmm_geo_test" >/dev/null ||
       ! "${psql[@]}" -d cmm_geo_test -c "CREATE EXTENSION postgis" >/dev/null; then
        _pgt_log "ERROR: could not create database cmm_geo_test with postgis"
        pg_throwaway_stop
        return 1
    fi

    export PG_THROWAWAY_PSQL_URL="postgresql://postgres@127.0.0.1:$port/cmm_geo_test"
    export CMM_GEO_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/cmm_geo_test"
    _PGT_SET_URL=1
    t1=$(date +%s%N)
    _pgt_log "PostgreSQL $ver + PostGIS up on 127.0.0.1:$port in $(( (t1 - t0) / 1000000 )) ms"
    _pgt_log "CMM_GEO_TEST_DATABASE_URL=$CMM_GEO_TEST_DATABASE_URL"
}

pg_throwaway_stop() {
    local dir="${PG_THROWAWAY_DIR:-}" ver pid
    [[ -n "$dir" ]] || return 0
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        ver=$(pg_throwaway_version 2>/dev/null || true)
        if [[ -n "$ver" ]]; then
            _pgt_as_owner "/usr/lib/postgresql/$ver/bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 -s stop \
                >/dev/null 2>&1 || true
        fi
        # Still there? Kill exactly our postmaster (by its pid file), then wait for it.
        if [[ -f "$dir/data/postmaster.pid" ]]; then
            pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
            if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
                kill -QUIT "$pid" 2>/dev/null || true
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -rf -- "$dir"
    _pgt_log "stopped and removed $dir"
    unset PG_THROWAWAY_DIR PG_THROWAWAY_PORT PG_THROWAWAY_PSQL_URL
    if [[ "${_PGT_SET_URL:-0}" == 1 ]]; then
        unset CMM_GEO_TEST_DATABASE_URL _PGT_SET_URL
    fi
    return 0
}

# ----- command-line use ---------------------------------------------------------------------
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        start)
            _pgt_sleep_pid=""
            trap '[[ -n "$_pgt_sleep_pid" ]] && kill "$_pgt_sleep_pid" 2>/dev/null; pg_throwaway_stop' EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            pg_throwaway_start
            echo "export CMM_GEO_TEST_DATABASE_URL=$CMM_GEO_TEST_DATABASE_URL"
            echo "# psql \"$PG_THROWAWAY_PSQL_URL\""
            echo "# running; press Ctrl-C to stop and delete the cluster" >&2
            while :; do
                sleep 3600 &
                _pgt_sleep_pid=$!
                wait "$_pgt_sleep_pid" || true
            done
            ;;
        run)
            shift
            [[ "${1:-}" == "--" ]] && shift
            [[ $# -gt 0 ]] || { echo "usage: $0 run -- COMMAND [ARGS…]" >&2; exit 2; }
            trap pg_throwaway_stop EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            pg_throwaway_start
            set +e
            "$@"
            rc=$?
            set -e
            exit "$rc"
            ;;
        *)
            echo "usage: bash $0 start | run -- COMMAND [ARGS…]" >&2
            exit 2
            ;;
    esac
fi
