package cli

import (
	"context"
	"strings"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/repo/s3store"
)

// openS3Store opens s3://bucket/prefix with the AWS settings of the
// environment (s3store.ConfigFromEnv). It makes no request.
func (a *app) openS3Store(ctx context.Context, rawURL string) (*s3store.Store, error) {
	bucket, prefix, err := s3store.ParseURL(rawURL)
	if err != nil {
		return nil, usageError{err}
	}
	cfg, err := s3store.ConfigFromEnv(a.getenv)
	if err != nil {
		return nil, usageError{err}
	}
	cfg.Bucket, cfg.Prefix = bucket, prefix
	return s3store.New(ctx, cfg)
}

// initStore opens the store of a repository about to be created. For S3 it
// creates the bucket if it is missing: repo init is the only command that
// does.
func (a *app) initStore(ctx context.Context, rawURL string) (repo.Store, error) {
	s, err := a.openStore(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	if s3, ok := s.(*s3store.Store); ok {
		created, err := s3.EnsureBucket(ctx)
		if err != nil {
			return nil, err
		}
		if created {
			a.log.Info("created bucket", "location", s3.Location())
		}
	}
	return s, nil
}

// redactURL hides a URL that url.Parse refused when it may hold
// credentials.
func redactURL(raw string) string {
	if strings.Contains(raw, "@") {
		return "(hidden: it may hold credentials)"
	}
	return raw
}
