package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryTimeout bounds one Exec, QueryInt or TableHashes call.
const queryTimeout = 5 * time.Minute

// ConnString returns a libpq connection string for the superuser over TCP.
func (i *Instance) ConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", i.Port)
}

// Conn opens a new connection, owned by the caller and closed at cleanup.
func (i *Instance) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, i.ConnString())
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", i.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx) // the server may be gone already
	})
	return c
}

// withConn runs fn on the instance's shared connection, opening it if needed.
func (i *Instance) withConn(fn func(context.Context, *pgx.Conn) error) error {
	i.connMu.Lock()
	defer i.connMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	if i.conn == nil || i.conn.IsClosed() {
		c, err := pgx.Connect(ctx, i.ConnString())
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		i.conn = c
	}
	return fn(ctx, i.conn)
}

func (i *Instance) closeConn() {
	i.connMu.Lock()
	defer i.connMu.Unlock()
	if i.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = i.conn.Close(ctx) // the server may be gone already
	i.conn = nil
}

// Exec runs sql on the instance's shared connection. Without args, sql may
// hold several statements. Session state (SET, an open transaction) carries
// over to later Exec and QueryInt calls: use Conn to keep it apart.
func (i *Instance) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	err := i.withConn(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		t.Fatalf("pgtest: %s: exec %q: %v", i.Name, sql, err)
	}
}

// QueryInt runs a query returning one row with one integer column.
func (i *Instance) QueryInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := i.queryRow(sql, args, &n); err != nil {
		t.Fatalf("pgtest: %s: query %q: %v", i.Name, sql, err)
	}
	return n
}

// QueryString runs a query returning one row with one text column.
func (i *Instance) QueryString(t testing.TB, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := i.queryRow(sql, args, &s); err != nil {
		t.Fatalf("pgtest: %s: query %q: %v", i.Name, sql, err)
	}
	return s
}

func (i *Instance) queryRow(sql string, args []any, dst any) error {
	return i.withConn(func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, sql, args...).Scan(dst)
	})
}

// listTables lists the user tables of the current database: display name
// and quoted name. Partitioned parents are left out: their partitions are
// listed themselves.
const listTables = `
SELECT n.nspname || '.' || c.relname, format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY 1`

// hashTable hashes a table's rows independently of their physical order: the
// md5 of the sorted md5s of the rows' text (the concatenated rows themselves
// would hit the 1 GB text limit on large tables). An empty table hashes to
// md5(”). ONLY keeps inheritance children out of their parent's hash.
const hashTable = `SELECT md5(coalesce(string_agg(md5(ROW(r.*)::text), '' ORDER BY md5(ROW(r.*)::text) COLLATE "C"), '')) FROM ONLY %s r`

// TableHashes returns, for every user table of the postgres database (all
// schemas but pg_catalog and information_schema), keyed "schema.table", a
// hash of its rows that does not depend on their physical order. Equal maps
// mean equal contents.
func (i *Instance) TableHashes(t testing.TB) map[string]string {
	t.Helper()
	hashes := make(map[string]string)
	err := i.withConn(func(ctx context.Context, c *pgx.Conn) error {
		rows, err := c.Query(ctx, listTables)
		if err != nil {
			return err
		}
		tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Quoted string }])
		if err != nil {
			return err
		}
		for _, tb := range tables {
			var h string
			if err := c.QueryRow(ctx, fmt.Sprintf(hashTable, tb.Quoted)).Scan(&h); err != nil {
				return fmt.Errorf("hash %s: %w", tb.Name, err)
			}
			hashes[tb.Name] = h
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pgtest: %s: table hashes: %v", i.Name, err)
	}
	return hashes
}
