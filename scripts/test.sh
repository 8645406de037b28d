#!/usr/bin/env bash
# The project's test command (README: `make test`; .ci/run calls it).
#  1. gofmt and go vet;
#  2. unit tests with no services at all (-short, no service addresses);
#  3. every fuzz target for a short, capped number of executions, and the
#     full-size synthetic folder held to the real KuaiRec's label statistics;
#  4. installs what is missing and starts the real services: Redis (Debian's
#     redis-server) and Apache Kafka (KRaft, jars from Maven Central, JDK 17),
#     and Debian's chromium for the dashboard's browser test;
#  5. the whole suite, unit + integration, with -race against those services.
# It ends with go test's own summary lines. Services are left running for the next
# run (start is idempotent); `make services-stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

export KAFKA_PORT=${KAFKA_PORT:-19092}
export REDIS_PORT=${REDIS_PORT:-16379}
# An execution count, not a duration: Go 1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" when a duration-based -fuzztime expires on a
# loaded machine (golang/go#75804, fixed in Go 1.27); a count has no deadline.
FUZZTIME=${FUZZTIME:-20000x}

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
go vet ./...

echo "== unit tests (no services)"
env -u STREAMREC_TEST_KAFKA -u STREAMREC_TEST_REDIS go test -short -count=1 ./...

echo "== fuzz targets, $FUZZTIME each"
grep -rlE '^func Fuzz[A-Za-z0-9_]+\(' --include='*_test.go' . | grep -v '^./.cache/' | sort | while read -r f; do
  pkg=./$(dirname "${f#./}")
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed 's/^func //'); do
    echo "fuzz $pkg $target"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/streamrec-fuzz.log 2>&1 || { cat /tmp/streamrec-fuzz.log; exit 1; }
  done
done

echo "== the full-size synthetic folder against the real KuaiRec's statistics (no -race: ~1 min)"
STREAMREC_TEST_FULL=1 go test -count=1 -run '^TestFullScaleCalibration$' -v ./internal/synth | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|calibration_test' || { echo "full-size calibration failed"; exit 1; }

echo "== the drift detectors on the generator's injected drifts (no -race: ~1 min)"
STREAMREC_TEST_DRIFT=1 go test -count=1 -run '^TestDetectionByDriftKind$' -v ./internal/online/drift/driftsim | grep -E '^(=== RUN|--- |    --- |PASS|FAIL|ok)|driftsim_test' || { echo "drift detection test failed"; exit 1; }

echo "== Chromium for the dashboard's browser test (Debian's chromium package)"
if ! command -v chromium >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } >&2 || { echo "could not install chromium"; exit 1; }
fi
chromium --version

echo "== services"
scripts/redis.sh start
scripts/kafka.sh start
export STREAMREC_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
export STREAMREC_TEST_REDIS=127.0.0.1:$REDIS_PORT

echo "== unit + integration tests, -race, against Kafka $STREAMREC_TEST_KAFKA and Redis $STREAMREC_TEST_REDIS"
go test -race -count=1 -timeout 15m ./...
