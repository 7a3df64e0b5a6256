package drill

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/internal/cluster"
)

// createTable makes the workload's table on the leader.
func createTable(ctx context.Context, snap cluster.Snapshot) error {
	return withConn(ctx, snap.Members[snap.Leader.Name].Conn, func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, createTableSQL+`; CREATE INDEX IF NOT EXISTS `+Table+`_run_seq ON `+Table+` (run, seq)`)
		return err
	})
}

func withConn(ctx context.Context, connString string, fn func(*pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

// readPresent counts the rows of each of run's writes on one node.
func readPresent(ctx context.Context, connString, run string) (map[int64]int, error) {
	present := map[int64]int{}
	err := withConn(ctx, connString, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, `SELECT seq, count(*) FROM `+Table+` WHERE run = $1 GROUP BY seq`, run)
		if err != nil {
			return err
		}
		var seq, n int64
		_, err = pgx.ForEachRow(rows, []any{&seq, &n}, func() error {
			present[seq] = int(n)
			return nil
		})
		return err
	})
	return present, err
}

// hashOf hashes run's rows on one node.
func hashOf(ctx context.Context, connString, run string) (string, error) {
	var h string
	err := withConn(ctx, connString, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT coalesce(md5(string_agg(seq::text || ':' || node, ',' ORDER BY seq, node)), '')
			FROM `+Table+` WHERE run = $1`, run).Scan(&h)
	})
	return h, err
}

// hashesWhenEqual hashes run's rows on every member, again until they are
// equal (replicas catching up) or the timeout passes; a node that cannot
// be read gets its error as its hash.
func hashesWhenEqual(ctx context.Context, snap cluster.Snapshot, run string, timeout time.Duration) map[string]string {
	deadline := time.Now().Add(timeout)
	for {
		hashes := map[string]string{}
		for name, m := range snap.Members {
			h, err := hashOf(ctx, m.Conn, run)
			if err != nil {
				h = fmt.Sprintf("error: %v", err)
			}
			hashes[name] = h
		}
		if consistent(hashes) || time.Now().After(deadline) || sleep(ctx, 200*time.Millisecond) != nil {
			return hashes
		}
	}
}
