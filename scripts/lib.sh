# lib.sh: shell functions shared by the demos (scripts/demo*.sh) and the
# benchmarks (bench/*.sh). Source it after defining die().

# as_pg CMD...: run CMD as the postgres OS user when root, because
# PostgreSQL refuses to run as root; bulwark runs as that user too, as it
# would in production (it reads the data directory, writes restored files).
as_pg() {
	if ((EUID == 0)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

section() { printf '\n=== %s ===\n' "$*"; }

# show CMD ARGS...: print a command line, quoting arguments with spaces.
show() {
	local a line='$'
	for a in "$@"; do
		[[ $a == *' '* ]] && a="'$a'"
		line+=" $a"
	done
	echo "$line"
}

# free_port prints a loopback TCP port nobody listens on.
free_port() {
	local port
	for _ in $(seq 100); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

# stop_pg DATADIR: fast shutdown of the server of DATADIR if it runs,
# immediate if that fails. Needs as_pg and PG_BIN.
stop_pg() {
	[[ -n $1 && -f $1/postmaster.pid ]] || return 0
	as_pg "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		as_pg "$PG_BIN/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true
}

# remove_workdir RC KEEP WHO: after a failure (RC ≠ 0) show the tail of
# $WORK/logs/server.log; then remove $WORK, or keep it when KEEP is 1.
remove_workdir() {
	local rc=$1 keep=$2 who=$3
	[[ -n $WORK && -d $WORK ]] || return 0
	if ((rc != 0)) && [[ -f $WORK/logs/server.log ]]; then
		echo "--- last lines of the server log ---" >&2
		tail -n 20 "$WORK/logs/server.log" >&2
	fi
	if [[ $keep == 1 ]]; then
		echo "$who: kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}

# init_cluster DATADIR: initdb (checksums, trust, C locale) and the settings
# the benchmarks share, on a free loopback port (sets PORT); more settings
# come on stdin. Needs as_pg, PG_BIN and $WORK/{logs,sock}.
init_cluster() {
	as_pg "$PG_BIN/initdb" -D "$1" --data-checksums -A trust -U postgres -E UTF8 --locale=C \
		>"$WORK/logs/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$WORK/logs/initdb.log")"
	PORT=$(free_port)
	{
		printf '%s\n' "port = $PORT" "listen_addresses = '127.0.0.1'" "unix_socket_directories = '$WORK/sock'" \
			"wal_level = replica" "archive_mode = off" "max_wal_senders = 10" "max_wal_size = 4GB" "autovacuum = off"
		cat
	} | as_pg tee -a "$1/postgresql.conf" >/dev/null
}
