# streamrec: the two commands of the README, and a few helpers.
.PHONY: demo test services services-stop bench vet

# The main job: the whole pipeline on the embedded default (no services needed).
demo:
	go run ./cmd/dev demo

# The tests: installs and starts Redis and Apache Kafka, runs unit, fuzz and
# integration tests (with -race). CI runs exactly this.
test:
	bash scripts/test.sh

services:
	bash scripts/redis.sh start
	bash scripts/kafka.sh start

services-stop:
	-bash scripts/kafka.sh stop
	-bash scripts/redis.sh stop

vet:
	go vet ./...

bench:
	bash scripts/bench.sh
