#!/usr/bin/env bash
# One command to install everything the tests need and run them, with nothing skipped:
#
#     bash scripts/test.sh [PYTEST ARGS…]      e.g.  bash scripts/test.sh -q -x -k postgis
#
# 1. Debian packages, only the missing ones (apt-get update only when something is missing):
#    gdal-bin (ogrinfo/ogr2ogr), postgresql-<ver> + postgresql-<ver>-postgis-3, chromium,
#    chromium-driver, fonts-liberation, wrk, python3-qgis + qgis-providers (QGIS 3.22, for
#    tests/clients/test_qgis.py). Uses sudo when not root.
# 2. .venv in the repo root (python3 -m venv; installs python3-venv if needed), then
#    `pip install -e ".[test]"`, skipped when the hash of pyproject.toml (+ python version)
#    matches .venv/.cmm-geo-installed. CMM_GEO_FORCE_INSTALL=1 forces the pip step.
# 3. A throwaway PostgreSQL+PostGIS cluster (scripts/pg_throwaway.sh) unless
#    CMM_GEO_TEST_DATABASE_URL is already set; stopped and deleted on exit.
# 4. pytest (two processes, pytest-xdist; CMM_GEO_TEST_WORKERS=N to change, 0 for one) with
#    CHROMIUM_PATH / CHROMEDRIVER_PATH set; exits with pytest's exit code
#    (5, "no tests collected", is reported as a failure).
#
# CMM_GEO_SKIP_APT=1 skips step 1 (e.g. on a machine where you manage packages yourself).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

T_START=$(date +%s)
log() { printf '==> [test.sh] %s\n' "$*"; }
die() { printf '==> [test.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# ----- 1. Debian packages --------------------------------------------------------------------
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

APT_UPDATED=0
apt_update_once() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        if [[ "$(id -u)" -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
            die "packages are missing and we are neither root nor have sudo: install them by hand: $*"
        fi
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null
        APT_UPDATED=1
    fi
}
apt_install() {
    apt_update_once "$@"
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 \
        install --no-install-recommends "$@" >/dev/null
}
pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

# shellcheck source=scripts/pg_throwaway.sh
source "$ROOT/scripts/pg_throwaway.sh"

ensure_debian_packages() {
    local missing=() pgver="" postgis_pkg
    command -v ogrinfo >/dev/null 2>&1 && command -v ogr2ogr >/dev/null 2>&1 || missing+=(gdal-bin)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    pkg_installed fonts-liberation || missing+=(fonts-liberation)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    pkg_installed python3-qgis && pkg_installed qgis-providers || missing+=(python3-qgis qgis-providers)

    if ! pg_throwaway_version >/dev/null 2>&1; then
        # A PostgreSQL server without PostGIS, or none at all: take the installed major version
        # (highest), else the one Debian's `postgresql` metapackage points to.
        # shellcheck disable=SC2010
        pgver=$(ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -n 1 || true)
        if [[ -z "$pgver" || ! -x "/usr/lib/postgresql/$pgver/bin/initdb" ]]; then
            apt_update_once postgresql
            pgver=$(apt-cache depends postgresql 2>/dev/null |
                    sed -nE 's/^ *Depends: postgresql-([0-9]+)$/\1/p' | sort -n | tail -n 1)
            [[ -n "$pgver" ]] || die "cannot tell which PostgreSQL major version Debian provides"
        fi
        postgis_pkg="postgresql-$pgver-postgis-3"
        if ! apt-cache show "$postgis_pkg" >/dev/null 2>&1; then
            apt_update_once "$postgis_pkg"
            if ! apt-cache show "$postgis_pkg" >/dev/null 2>&1; then
                postgis_pkg=$(apt-cache search --names-only "^postgresql-$pgver-postgis-[0-9]+\$" |
                              awk '{print $1}' | sort -V | tail -n 1)
                [[ -n "$postgis_pkg" ]] || die "no PostGIS package for PostgreSQL $pgver"
            fi
        fi
        missing+=("postgresql-$pgver" "$postgis_pkg")
    fi

    if [[ ${#missing[@]} -eq 0 ]]; then
        log "Debian packages: all present (PostgreSQL $(pg_throwaway_version), $(ogrinfo --version 2>/dev/null | cut -d, -f1), $(chromium --version 2>/dev/null | head -n 1))"
        return 0
    fi
    log "Debian packages missing: ${missing[*]}"
    apt_install "${missing[@]}"
    pg_throwaway_version >/dev/null || die "PostgreSQL/PostGIS still not usable after install"
    log "Debian packages installed"
}

if [[ "${CMM_GEO_SKIP_APT:-0}" == 1 ]]; then
    log "CMM_GEO_SKIP_APT=1: not checking Debian packages"
else
    ensure_debian_packages
fi

# ----- 2. virtualenv + pip -------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PYTHON is $("$PYTHON" -V 2>&1); Python >= 3.11 is needed"

VENV="$ROOT/.venv"
STAMP="$VENV/.cmm-geo-installed"

venv_ok() {
    [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

if ! venv_ok; then
    if [[ -e "$VENV" ]]; then
        log "existing .venv is broken or too old: recreating it"
        rm -rf -- "$VENV"
    fi
    log "creating .venv with $("$PYTHON" -V 2>&1)"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf -- "$VENV"
        venv_pkg=$("$PYTHON" -c 'import sys; print(f"python3.{sys.version_info.minor}-venv")')
        log "python3 -m venv failed: installing python3-venv $venv_pkg"
        apt_install python3-venv "$venv_pkg" || apt_install python3-venv
        "$PYTHON" -m venv "$VENV" || die "python3 -m venv still fails"
    fi
fi

want_stamp=$( { cat pyproject.toml; "$VENV/bin/python" -VV; } | sha256sum | cut -d' ' -f1)
if [[ "${CMM_GEO_FORCE_INSTALL:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]]; then
    log "Python deps: up to date (pyproject.toml unchanged since last install)"
else
    [[ -f pyproject.toml ]] || die "no pyproject.toml in $ROOT"
    log "pip install -e \".[test]\" (this takes a while the first time)"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    PIP_LOG="$VENV/pip-install.log"
    if ! "$VENV/bin/pip" install -q -e ".[test]" >"$PIP_LOG" 2>&1; then
        tail -n 40 "$PIP_LOG" >&2
        # A dependency without a wheel for this platform: bring the usual build deps, retry once.
        log "pip install failed (log above, full log in $PIP_LOG): installing build deps and retrying"
        apt_install build-essential python3-dev libpq-dev libgdal-dev pkg-config
        if ! "$VENV/bin/pip" install -q -e ".[test]" >"$PIP_LOG" 2>&1; then
            tail -n 60 "$PIP_LOG" >&2
            die "pip install -e \".[test]\" failed (full log in $PIP_LOG)"
        fi
    fi
    echo "$want_stamp" >"$STAMP"
    log "Python deps installed"
fi

# ----- 2b. map assets (Leaflet from the npm registry, served by the app) -------------------
bash "$ROOT/scripts/fetch_assets.sh"

# ----- 3. PostGIS test database --------------------------------------------------------------
if [[ -n "${CMM_GEO_TEST_DATABASE_URL:-}" ]]; then
    log "using the given CMM_GEO_TEST_DATABASE_URL (no throwaway cluster)"
else
    trap pg_throwaway_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "starting a throwaway PostgreSQL+PostGIS cluster"
    pg_throwaway_start || die "could not start the throwaway PostgreSQL+PostGIS cluster"
fi
export CMM_GEO_TEST_DATABASE_URL

# ----- 4. pytest -----------------------------------------------------------------------------
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
export CHROMEDRIVER_PATH="${CHROMEDRIVER_PATH:-/usr/bin/chromedriver}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
[[ -x "$CHROMIUM_PATH" ]] || die "CHROMIUM_PATH=$CHROMIUM_PATH is not executable"

# Two test processes unless told otherwise (-n N, or CMM_GEO_TEST_WORKERS=0 for one).
if [[ " $* " != *" -n "* && " $* " != *" -n="* && "${CMM_GEO_TEST_WORKERS:-2}" != 0 ]]; then
    set -- -n "${CMM_GEO_TEST_WORKERS:-2}" "$@"
fi
log "setup took $(( $(date +%s) - T_START ))s; running: python -m pytest $*"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e

if [[ $rc -eq 5 ]]; then
    log "FAILED: pytest collected no tests (exit code 5); treating that as a failure"
elif [[ $rc -eq 0 ]]; then
    log "tests passed ($(( $(date +%s) - T_START ))s in all)"
else
    log "pytest exited with code $rc"
fi
exit "$rc"
