#!/usr/bin/env bash
# Idempotent set-up: the Debian packages the project runs against, then a venv with the package.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# wrk is the benchmarks' HTTP load generator (make bench); chromium and its driver run the
# console's browser tests.
DEB_PACKAGES=(redis-server prometheus prometheus-alertmanager prometheus-redis-exporter
              prometheus-node-exporter postgresql wrk chromium chromium-driver)
# binary -> the package that ships it; a package counts as present when its binary is on PATH
# (or, for PostgreSQL, when initdb exists in a versioned directory).
declare -A BINARY_OF=(
  [redis-server]=redis-server [prometheus]=promtool [prometheus-alertmanager]=amtool
  [prometheus-redis-exporter]=prometheus-redis-exporter
  [prometheus-node-exporter]=prometheus-node-exporter [postgresql]=initdb [wrk]=wrk
  [chromium]=chromium [chromium-driver]=chromedriver
)

have_binary() {
  local bin=$1
  command -v "$bin" >/dev/null 2>&1 && return 0
  [ "$bin" = initdb ] && compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  return 1
}

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  have_binary "${BINARY_OF[$pkg]}" || missing+=("$pkg")
done
# prometheus ships both promtool and the server; check the server too.
command -v prometheus >/dev/null 2>&1 || [[ " ${missing[*]} " == *" prometheus "* ]] || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || [[ " ${missing[*]} " == *" prometheus-alertmanager "* ]] || missing+=(prometheus-alertmanager)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: Debian packages missing: ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # A policy-rc.d that answers 101 ("action forbidden") keeps the packages' own services
    # (redis-server, postgresql, prometheus, ...) from starting on install: tradeguard starts
    # its own on free ports, and system-wide daemons would only hold ports and memory. An
    # existing policy-rc.d is the administrator's and is left as it is.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# tradeguard setup: no service starts during this install\nexit 101\n' > "$policy"
      chmod 0755 "$policy"
      own_policy=1
      trap 'rm -f "$policy"' EXIT
      echo "setup: services of the packages installed now will not be started ($policy, removed afterwards)"
    else
      echo "setup: $policy exists and decides whether the new packages' services start"
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ "$own_policy" = 1 ]; then
      rm -f "$policy"
      trap - EXIT
    fi
  else
    echo "setup: run this as root, then re-run make:"
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing tradeguard and its dev extras into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "setup: ok"
