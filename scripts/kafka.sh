#!/usr/bin/env bash
# Apache Kafka (KRaft, single node) for tests and local runs, from the official jars
# on Maven Central, on the machine's JDK 17. Listens on 127.0.0.1 only.
#
#   scripts/kafka.sh start   fetch jars if missing, format storage on first start,
#                            start (or reuse a running one), wait until metadata answers
#   scripts/kafka.sh stop    stop by PID (SIGTERM, then SIGKILL after 20 s)
#   scripts/kafka.sh status
#
# Environment: KAFKA_PORT (default 19092; the controller uses KAFKA_PORT+1),
# KAFKA_HEAP (default 1g), STREAMREC_CACHE (jar cache, default .cache in the repo),
# STREAMREC_RUN (state and logs, default .run in the repo).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
port=${KAFKA_PORT:-19092}
cport=$((port + 1))
heap=${KAFKA_HEAP:-1g}
cache=${STREAMREC_CACHE:-$repo/.cache}
run=${STREAMREC_RUN:-$repo/.run}
libs=$cache/kafka/libs
dir=$run/kafka-$port
pidfile=$dir/kafka.pid
log=$dir/server.log

die() { echo "kafka.sh: $*" >&2; exit 1; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

fetch() {
  if [ -f "$libs/.complete" ]; then return; fi
  if ! command -v java >/dev/null; then
    echo "kafka.sh: installing Debian's openjdk-17-jre-headless" >&2
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null || die "no java, and the JDK could not be installed"
  fi
  if ! command -v mvn >/dev/null; then
    echo "kafka.sh: installing maven" >&2
    apt-get update -qq && apt-get install -y -qq maven >/dev/null || die "could not install maven"
  fi
  echo "kafka.sh: fetching Apache Kafka jars from Maven Central into $libs" >&2
  mkdir -p "$libs"
  # Maven 3.8 prints colour codes even in quiet batch mode: strip them.
  mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -Dmaven.repo.local="$cache/m2" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 \
    || die "maven could not fetch the Kafka jars"
  touch "$libs/.complete"
}

configure() {
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
group.consumer.session.timeout.ms=6000
group.consumer.min.session.timeout.ms=1000
group.min.session.timeout.ms=1000
log.retention.ms=-1
PROPS
  cat >"$dir/log4j2.properties" <<'PROPS'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
PROPS
}

java_cmd() {
  java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$libs/*" "$@"
}

wait_ready() {
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-90}))
  while [ $SECONDS -lt $deadline ]; do
    if ! running; then
      echo "kafka.sh: the broker exited during start; last lines of $log:" >&2
      tail -n 40 "$log" >&2 || true
      exit 1
    fi
    if (cd "$repo" && go run ./scripts/kafkacheck -brokers "127.0.0.1:$port" -timeout 2s >/dev/null 2>&1); then
      echo "kafka.sh: Apache Kafka ready on 127.0.0.1:$port (pid $(cat "$pidfile"), log $log)" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: the broker did not answer metadata on 127.0.0.1:$port in time; last lines of $log:" >&2
  tail -n 40 "$log" >&2 || true
  exit 1
}

start() {
  if running; then
    echo "kafka.sh: reusing the running broker on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2
    wait_ready
    return
  fi
  fetch
  configure
  if [ ! -f "$dir/data/meta.properties" ]; then
    java_cmd kafka.tools.StorageTool format -t "streamrec-test-cluster-0001" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting storage failed"; }
  fi
  # setsid: the broker outlives this script and is stopped by PID.
  setsid bash -c "exec java -Xms$heap -Xmx$heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile='$dir/log4j2.properties' \
    -cp '$libs/*' kafka.Kafka '$dir/server.properties'" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_ready
}

stop() {
  if ! running; then echo "kafka.sh: no broker running on port $port" >&2; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka.sh: stopped broker on port $port" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo "not running"; exit 3; fi ;;
  fetch) fetch ;;
  *) die "usage: scripts/kafka.sh start|stop|status|fetch" ;;
esac
