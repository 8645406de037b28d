#!/usr/bin/env bash
# The closed loop on the real services (scripts/kafka.sh and scripts/redis.sh
# must run): optionally trains and publishes a model into namespace NS, starts
# the updater and the API (with the online evaluation) on NS, and runs
# `replay sim` against them; the processes stop when the simulation ends.
#
#   scripts/closed-loop.sh DATA NS [replay sim flags...]
#
# Environment: TRAIN=1 trains and publishes first (ingestor train --cut $CUT,
# default 2020-08-27T00:00:00+08:00); UPD_FLAGS and API_FLAGS add flags to the
# updater and the API (for example API_FLAGS="--explore-rate 0.1"); WIN is the
# evaluator's window (10s); KAFKA and REDIS the service addresses.
# REPLAY=1 also replays the big matrix's events from $CUT into the same topic
# (source replay: the rest of the users' traffic, which a retrain from the log
# learns from) on the simulation's virtual clock: it needs the sim's --from,
# --until and --speedup given as REPLAY_FROM, REPLAY_UNTIL and REPLAY_SPEEDUP.
# The README's closed-loop figures were taken with it (see "The frozen twin,
# feedback-to-effect and the closed loop").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  sed -n '2,18p' "$0"; exit 2
fi
DATA=$1; NS=$2; shift 2
K=${KAFKA:-127.0.0.1:19092}; R=${REDIS:-127.0.0.1:16379}
CUT=${CUT:-2020-08-27T00:00:00+08:00}
B=.cache/bin
go build -o $B/ ./cmd/ingestor ./cmd/updater ./cmd/api ./replay
TOPIC=$NS.interactions
LOG=${LOGDIR:-/tmp/closed-loop-$NS}; mkdir -p "$LOG"
if [ "${TRAIN:-0}" = 1 ]; then
  echo "closed-loop: training and publishing into namespace $NS (report $LOG/report.json)"
  $B/ingestor train --data "$DATA" --cut "$CUT" --redis-addr $R --namespace $NS --model-version "$NS-v1" \
    --report "$LOG/report.json" --model-out "$LOG/model.srm" --log-level warn
fi
free_port() { echo $(( 20000 + RANDOM % 20000 )); }
UMET=127.0.0.1:$(free_port)
$B/updater --brokers $K --redis-addr $R --namespace $NS --topic $TOPIC --changelog-topic $NS.state --assign all --partitions 4 \
  --metrics-addr $UMET --log-level warn ${UPD_FLAGS:-} 2>"$LOG/updater.log" &
UPD=$!
trap 'kill $UPD ${API:-} 2>/dev/null; wait' EXIT
for _ in $(seq 100); do curl -sf "http://$UMET/metrics" >/dev/null && break; sleep 0.2; done
APIADDR=127.0.0.1:$(free_port)
$B/api --listen $APIADDR --brokers $K --redis-addr $R --namespace $NS --topic $TOPIC --log-level warn --model-poll 500ms \
  --eval --eval-open-for 10s --eval-grace 500ms --eval-window ${WIN:-10s} --eval-flush 100ms ${API_FLAGS:-} 2>"$LOG/api.log" &
API=$!
echo "closed-loop: updater metrics on http://$UMET/metrics, API on http://$APIADDR (logs in $LOG)"
if [ "${REPLAY:-0}" = 1 ]; then
  $B/replay --data "$DATA" --brokers $K --topic $TOPIC --cut "$CUT" --from "$REPLAY_FROM" --until "$REPLAY_UNTIL" \
    --speedup "$REPLAY_SPEEDUP" --partitions 4 --progress=false --log-level warn 2>"$LOG/replay.log" &
  REP=$!
  trap 'kill $UPD ${API:-} $REP 2>/dev/null; wait' EXIT
  echo "closed-loop: replaying the log from $REPLAY_FROM at ${REPLAY_SPEEDUP}x (log in $LOG/replay.log)"
fi
$B/replay sim --api http://$APIADDR --data "$DATA" --redis-addr $R --namespace $NS "$@"
echo "closed-loop: updater $(curl -s "http://$UMET/metrics" | grep -E '^streamrec_updater_(events_applied_total|freshness_p50_seconds|freshness_p99_seconds) ' | tr '\n' ' ')"
