#!/usr/bin/env bash
# System packages that some tests need besides the Python lock (Debian/Ubuntu):
#   chromium    tests/test_browser.py drives the MLflow UI in headless Chromium (via Playwright)
#   postgresql  tests/test_postgres_scaleout.py starts a throwaway PostgreSQL server
# Called by `make test` (so by .ci/run). Installs only what is missing, and only as root with
# apt-get; otherwise it does nothing and those tests skip, saying why. Quick when all is there.
set -uo pipefail

have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; }

missing=()
have_chromium || missing+=(chromium)
have_postgres || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    exit 0  # not ours to install: the tests that need them skip
fi

echo "install-test-system-deps: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The tests start their own throwaway cluster: keep the package from creating (and starting) a system one.
if [[ " ${missing[*]} " == *" postgresql "* && ! -e /etc/postgresql-common/createcluster.conf ]]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null; }; then
    echo "install-test-system-deps: could not install ${missing[*]}; the tests that need them will skip" >&2
fi
exit 0
