#!/usr/bin/env bash
# Bench harness: starts the real services (as the test command does), installs kcat
# (Debian's package) for the reference, and prints the figures with medians.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT=${KAFKA_PORT:-19092}
scripts/redis.sh start
scripts/kafka.sh start
if ! command -v kcat >/dev/null; then
  apt-get update -qq && apt-get install -y -qq kcat >/dev/null
fi
echo "== codec: encode+decode on one core, beside encoding/json"
go test -run '^$' -bench Codec -benchmem -count 5 -cpu 1 ./internal/stream/ | grep -E '^Benchmark'
echo "== producer: stream.Producer vs kcat into Apache Kafka on 127.0.0.1:$KAFKA_PORT"
go run ./bench/producer --brokers "127.0.0.1:$KAFKA_PORT" --events 1000000 --runs 5
echo "== replay vs kcat (synthetic full-size KuaiRec; generated once into .cache/full)"
if [ ! -f ".cache/full/KuaiRec 2.0/data/big_matrix.csv" ]; then
  go run ./cmd/ingestor synth --out .cache/full --scale full --seed 1
fi
go run ./bench/replay --data .cache/full --brokers "127.0.0.1:$KAFKA_PORT" --events 2000000 --runs 5
echo "== updater: max throughput, sustained 200k events/s for 60 s, freshness at 10k events/s, peak RSS"
go run ./bench/updater --brokers "127.0.0.1:$KAFKA_PORT" --redis-addr "127.0.0.1:${REDIS_PORT:-16379}"
