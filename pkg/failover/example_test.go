package failover_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// An application that follows the cluster "payments" through etcd, writes
// to the primary and reads from a replica at most 1 MiB behind.
func Example() {
	ctx := context.Background()
	pool, err := failover.Open(ctx, failover.Config{
		ConnString: "user=app dbname=payments sslmode=verify-full sslrootcert=/etc/app/pg-ca.pem",
		Source: &failover.EtcdSource{
			Endpoints: []string{"10.0.0.5:2379", "10.0.0.6:2379", "10.0.0.7:2379"},
			Cluster:   "payments",
		},
		MaxReadLag:      1 << 20,
		FailoverTimeout: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	// The function may run again on the new primary after a failover,
	// so it does nothing outside the transaction.
	err = pool.Write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO payments (id, amount) VALUES ($1, $2)", "p-1001", 42)
		return err
	})
	switch {
	case errors.Is(err, failover.ErrUnknownOutcome):
		// The connection broke during COMMIT: look for p-1001 before
		// trying again.
	case err != nil:
		log.Fatal(err)
	}

	var total int64
	err = pool.Read(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT coalesce(sum(amount), 0) FROM payments").Scan(&total)
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("total", total)
}
