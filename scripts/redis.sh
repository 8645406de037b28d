#!/usr/bin/env bash
# Redis for tests and local runs, from Debian's redis-server package (installed if
# missing), on 127.0.0.1 only, with no persistence (Redis is a cache here: Kafka is
# the source of truth).
#
#   scripts/redis.sh start | stop | status
#
# Environment: REDIS_PORT (default 16379), STREAMREC_RUN (state, default .run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
port=${REDIS_PORT:-16379}
run=${STREAMREC_RUN:-$repo/.run}
dir=$run/redis-$port
pidfile=$dir/redis.pid
log=$dir/redis.log

die() { echo "redis.sh: $*" >&2; exit 1; }
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

install() {
  command -v redis-server >/dev/null && return
  echo "redis.sh: installing Debian's redis-server package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq redis-server >/dev/null || die "could not install redis-server"
  # The package may start a system instance on 6379; ours is separate.
}

start() {
  install
  mkdir -p "$dir"
  if running; then
    echo "redis.sh: reusing the running Redis on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2
  else
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes --save '' --appendonly no \
      --dir "$dir" --pidfile "$pidfile" --logfile "$log" --daemonize yes || die "redis-server did not start"
  fi
  for _ in $(seq 1 100); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
      echo "redis.sh: Redis ready on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2
      return
    fi
    sleep 0.1
  done
  tail -n 20 "$log" >&2 || true
  die "Redis did not answer PING on 127.0.0.1:$port"
}

stop() {
  if ! running; then echo "redis.sh: no Redis running on port $port" >&2; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "redis.sh: stopped Redis on port $port" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo "not running"; exit 3; fi ;;
  *) die "usage: scripts/redis.sh start|stop|status" ;;
esac
