#!/usr/bin/env bash
# Regenerates deploy/prometheus/exporter-metrics/{redis,node}_exporter.txt from the installed
# binaries: starts a throwaway redis-server with a stream and a consumer group, scrapes
# redis_exporter (stream checks on) and node_exporter once, keeps the series names.
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/prometheus/exporter-metrics
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port); eport=$(free_port); nport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --logfile "$tmp/redis.log" --dir "$tmp" --maxmemory 100mb
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$rport" XADD tg:signals '*' a 1 >/dev/null
redis-cli -p "$rport" XGROUP CREATE tg:signals engine 0 >/dev/null
redis-cli -p "$rport" XREADGROUP GROUP engine c1 COUNT 1 STREAMS tg:signals '>' >/dev/null
prometheus-redis-exporter -redis.addr "redis://127.0.0.1:$rport" -web.listen-address "127.0.0.1:$eport" \
  -check-streams 'tg:signals,tg:results' >"$tmp/re.log" 2>&1 &
prometheus-node-exporter --web.listen-address="127.0.0.1:$nport" >"$tmp/ne.log" 2>&1 &
scrape() { for _ in $(seq 50); do curl -fsS "$1" && return 0; sleep 0.1; done; return 1; }
names() { grep -v '^#' | sed -E 's/[{ ].*//' | sort -u; }
{ echo "# Series names scraped from prometheus-redis-exporter ($(prometheus-redis-exporter -version 2>&1 | grep -o 'Exporter [0-9.]*'))"
  echo "# against redis-server with -check-streams on the signal and result streams. Regenerate: scripts/scan_exporters.sh"
  scrape "http://127.0.0.1:$eport/metrics" | names; } > "$out/redis_exporter.txt"
{ echo "# Series names scraped from prometheus-node-exporter ($(prometheus-node-exporter --version 2>&1 | head -1 | grep -o 'version [0-9.]*')) with its default collectors."
  echo "# Regenerate: scripts/scan_exporters.sh"
  scrape "http://127.0.0.1:$nport/metrics" | names; } > "$out/node_exporter.txt"
echo "wrote $out/redis_exporter.txt and $out/node_exporter.txt"
