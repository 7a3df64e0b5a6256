package s3store

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"

	"github.com/minio/minio-go/v7"

	"github.com/bulwarkdb/bulwark/internal/repo"
)

// sizeError is a reader that does not hold the size given to Put.
type sizeError struct{ msg string }

func (e *sizeError) Error() string { return e.msg }

// code returns the S3 error code in err, or "" if the server did not answer
// with one.
func code(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// credentialCodes are the S3 codes of a refused identity or signature.
var credentialCodes = map[string]bool{
	"AccessDenied": true, "InvalidAccessKeyId": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "InvalidToken": true, "AllAccessDisabled": true,
}

// fail describes err, returned by minio-go for op on key (an object key or
// the bucket): absent objects wrap repo.ErrNotFound, and the other errors
// say what to check. Neither minio-go's errors nor these hold credentials:
// requests are signed in headers, never in URLs.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s %s: %w", op, key, cerr)
	}
	var se *sizeError
	if errors.As(err, &se) {
		return fmt.Errorf("%s %s: %w", op, key, se)
	}
	switch c := code(err); {
	case c == minio.NoSuchKey:
		return fmt.Errorf("%s %s: %w", op, key, repo.ErrNotFound)
	case c == minio.NoSuchBucket:
		return fmt.Errorf("%s %s: bucket %s does not exist at %s (create it, or let bulwark repo init create it): %w", op, key, s.cfg.Bucket, s.cfg.Endpoint, err)
	case credentialCodes[c]:
		return fmt.Errorf("%s %s in %s at %s: %w (check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role)",
			op, key, s.Location(), s.cfg.Endpoint, err)
	case c != "":
		return fmt.Errorf("%s %s in %s at %s: %w", op, key, s.Location(), s.cfg.Endpoint, err)
	}
	var unknownCA x509.UnknownAuthorityError
	if errors.As(err, &unknownCA) {
		return fmt.Errorf("%s %s: the certificate of S3 endpoint %s is not trusted (set BULWARK_S3_CA_FILE to its CA): %w", op, key, s.cfg.Endpoint, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: S3 endpoint %s did not answer (%d attempts): %w", op, key, s.cfg.Endpoint, s.cfg.MaxAttempts, err)
	}
	return fmt.Errorf("%s %s in %s at %s: %w", op, key, s.Location(), s.cfg.Endpoint, err)
}
