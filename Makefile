# Bulwark build and test entry points. CI runs `make test` (.ci/run).
GO ?= go
BIN := bin/bulwark

.PHONY: build test test-short demo demo-backup bench bench-backup bench-wal bench-s3 bench-ha bench-proxy clean

build:
	$(GO) build -o $(BIN) ./cmd/bulwark

# Integration level: real PostgreSQL. BULWARK_TEST_REQUIRE turns the skips of
# missing servers into failures (a caller may widen it, e.g. "pg,etcd").
test: export BULWARK_TEST_REQUIRE ?= pg
test:
	bash scripts/install-deps.sh
	$(GO) vet ./...
	$(GO) test -race -timeout 25m ./...

test-short:
	$(GO) test -short ./...

demo:
	bash scripts/demo.sh

# The backup tour: full and incremental backups, a restore, every table compared.
demo-backup:
	bash scripts/demo-backup.sh

# Every benchmark, side by side with its peer (pgBackRest, pg_basebackup, Patroni).
bench: bench-backup bench-wal bench-s3 bench-ha bench-proxy

bench-backup:
	bash bench/run.sh

bench-wal:
	bash bench/wal.sh

bench-s3:
	bash bench/s3.sh

# Failover: Patroni (default and tuned timing) and bulwark, three nodes on
# loopback, the same writer and faults. BENCH_HA_SYSTEMS picks the systems.
bench-ha:
	bash bench/ha.sh

# bulwark proxy against direct connections and HAProxy with Patroni's checks:
# pgbench throughput, and the clients' outage through kill-primary and switchover.
bench-proxy:
	bash bench/proxy.sh

clean:
	rm -rf bin
