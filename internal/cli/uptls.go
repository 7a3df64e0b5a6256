package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwarkdb/bulwark/internal/localtls"
)

// localSec is what a local cluster's plan says about TLS.
type localSec struct {
	scheme       string // of the etcd endpoint
	etcdTLS      string // appended to the etcd mapping
	clusterLines string // api_tls and conn_options lines
	parameters   string // appended to the PostgreSQL parameters
}

// localSecurity makes the certificates of bulwark up --tls in DIR/tls,
// owned by the agents' user: every connection then runs over TLS with
// certificates verified both ways, as in production. Without --tls,
// everything is plain.
func localSecurity(dir string, on bool) (localSec, error) {
	if !on {
		return localSec{scheme: "http"}, nil
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		return localSec{}, err
	}
	f, err := localtls.Write(tlsDir, 10*365*24*time.Hour)
	if err != nil {
		return localSec{}, err
	}
	owner, err := postgresOwner()
	if err != nil {
		return localSec{}, err
	}
	if owner != nil {
		// PostgreSQL and libpq refuse a key file that its user does not own.
		for _, p := range []string{tlsDir, f.CA, f.Cert, f.Key} {
			if err := os.Chown(p, int(owner.Uid), int(owner.Gid)); err != nil {
				return localSec{}, err
			}
		}
	}
	files := fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", f.CA, f.Cert, f.Key)
	return localSec{
		scheme:  "https",
		etcdTLS: ", tls: " + files,
		clusterLines: "  api_tls: " + files + "\n" +
			fmt.Sprintf("  conn_options: \"sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s\"\n", f.CA, f.Cert, f.Key),
		parameters: fmt.Sprintf(", ssl: \"on\", ssl_cert_file: %s, ssl_key_file: %s, ssl_ca_file: %s", f.Cert, f.Key, f.CA),
	}, nil
}
