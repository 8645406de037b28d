#!/usr/bin/env bash
# The time and memory of a retrain from the log at KuaiRec scale: replays the
# rows of a full-size folder from the cut on into a fresh interactions topic
# (the replay tool, as fast as it goes), then times `ingestor train
# --from-log` on that folder and topic with /usr/bin/time -v (wall time and
# peak RSS of the whole process), publishing into a namespace of its own.
#
#   flock /tmp/streamrec-bench.lock bash bench/retrain.sh DATA [CUT]
#
# DATA is a full-size folder (for example one from `ingestor synth --scale
# full`); CUT defaults to 2020-08-27T00:00:00+08:00. Kafka and Redis must
# run (scripts/kafka.sh, scripts/redis.sh; KAFKA and REDIS override the
# addresses).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then sed -n '2,13p' "$0"; exit 2; fi
DATA=$1; CUT=${2:-2020-08-27T00:00:00+08:00}
K=${KAFKA:-127.0.0.1:19092}; R=${REDIS:-127.0.0.1:16379}
B=.cache/bin; mkdir -p $B
go build -o $B/ ./cmd/ingestor ./replay
RUN=retrain-$(date +%s); OUT=/tmp/$RUN; mkdir -p "$OUT"
echo "retrain figure $(date -u +%FT%TZ): data $DATA, cut $CUT, topic $RUN.interactions, load average $(cut -d' ' -f1-3 /proc/loadavg)"
$B/replay --data "$DATA" --brokers $K --topic $RUN.interactions --cut "$CUT" --progress=false --log-level warn
/usr/bin/time -v $B/ingestor train --data "$DATA" --cut "$CUT" --from-log --brokers $K --topic $RUN.interactions \
  --redis-addr $R --namespace $RUN --model-version $RUN-v1 --report "$OUT/report.json" --model-out "$OUT/model.srm" \
  --quiet --log-level warn 2>"$OUT/time.txt" || { cat "$OUT/time.txt"; exit 1; }
grep -E 'Elapsed \(wall|Maximum resident|User time|System time' "$OUT/time.txt"
grep -o '"log": *{[^}]*}' "$OUT/report.json" || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
