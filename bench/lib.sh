# bench/lib.sh: what bench/run.sh, bench/wal.sh and bench/s3.sh share, on top
# of scripts/lib.sh (source that one after this one: it needs die).

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# as_pg runs a command as the postgres OS user (the benchmarks run as root).
as_pg() { runuser -u postgres -- "$@"; }
