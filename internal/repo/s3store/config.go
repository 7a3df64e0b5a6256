package s3store

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config says where a Store keeps its objects and how it reaches them. The
// zero value of each tuning field means its default. Build one with
// ConfigFromEnv and ParseURL.
type Config struct {
	Bucket string
	// Prefix is prepended to every key with a "/" between; empty keeps keys
	// at the bucket's root. It has no leading or trailing slash.
	Prefix string

	// Endpoint is the server's URL, "https://host[:port]" or
	// "http://host[:port]"; its scheme decides TLS. Empty means
	// DefaultEndpoint.
	Endpoint string
	// PathStyle addresses buckets as https://host/bucket/key rather than
	// https://bucket.host/key. Servers other than AWS usually need it.
	PathStyle bool
	// Region is the bucket's region; empty means DefaultRegion.
	Region string

	// AccessKey, SecretKey and SessionToken are static credentials. When
	// both keys are empty the shared credentials file (CredentialsFile,
	// Profile), then the instance's IAM role are tried.
	AccessKey    string
	SecretKey    Secret
	SessionToken Secret
	// CredentialsFile is the shared credentials file (~/.aws/credentials);
	// empty skips it.
	CredentialsFile string
	// Profile is the section of CredentialsFile to use ("default" if empty).
	Profile string

	// SSE asks the server to encrypt objects at rest, on top of bulwark's
	// own encryption: "" (no request), SSES3 or SSEKMS.
	SSE string
	// SSEKMSKeyID is the KMS key for SSEKMS; empty means the account's
	// default key for S3.
	SSEKMSKeyID string
	// CAFile is a PEM file of extra certificate authorities to trust, for
	// a server with a private CA.
	CAFile string

	// MaxInFlight bounds the requests in flight at once; zero means
	// DefaultMaxInFlight.
	MaxInFlight int
	// PartSize is the size above which Put uploads in parts of this size
	// (zero means DefaultPartSize).
	PartSize int64
	// MaxAttempts is how many times one request is tried before its error
	// is returned (zero means DefaultMaxAttempts).
	MaxAttempts int
	// DialTimeout bounds connecting to the endpoint (zero means
	// DefaultDialTimeout).
	DialTimeout time.Duration
	// ResponseTimeout bounds the wait for a response's headers once the
	// request is sent (zero means DefaultResponseTimeout).
	ResponseTimeout time.Duration
	// StallTimeout fails a read of an object that receives no data for
	// this long (zero means DefaultStallTimeout).
	StallTimeout time.Duration
}

// Defaults of Config's fields.
const (
	DefaultEndpoint = "https://s3.amazonaws.com"
	DefaultRegion   = "us-east-1"
	// DefaultMaxInFlight requests at once keeps a 2-core machine busy
	// without opening hundreds of connections.
	DefaultMaxInFlight = 16
	// DefaultPartSize is above the repository's 16 MiB packs (repo.DefaultPackSize)
	// so that a pack is one PUT; larger objects go in 32 MiB parts.
	DefaultPartSize = 32 << 20
	// DefaultMaxAttempts with DefaultDialTimeout bound a dead endpoint: see
	// the package comment.
	DefaultMaxAttempts     = 6
	DefaultDialTimeout     = 4 * time.Second
	DefaultResponseTimeout = time.Minute
	DefaultStallTimeout    = time.Minute
)

// The values of Config.SSE (the x-amz-server-side-encryption header).
const (
	SSES3  = "AES256"
	SSEKMS = "aws:kms"
)

// Secret is a credential. It prints as "[redacted]" so that a Config can be
// logged or printed without leaking it.
type Secret string

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return `"[redacted]"` }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// ParseURL splits s3://bucket/prefix into its bucket and prefix (without
// leading or trailing slash; empty for s3://bucket). It refuses a URL with
// credentials in it, a port, a query, or empty, "." or ".." path segments.
// Its errors never repeat a URL that holds credentials.
func ParseURL(u string) (bucket, prefix string, err error) {
	p, err := url.Parse(u)
	if err != nil {
		if strings.Contains(u, "@") {
			return "", "", errors.New("repository URL is not a valid s3://bucket/prefix URL")
		}
		return "", "", fmt.Errorf("repository URL %q: %w", u, err)
	}
	if p.User != nil {
		return "", "", errors.New("an s3:// repository URL must not hold credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use AWS_PROFILE")
	}
	if p.Scheme != "s3" {
		return "", "", fmt.Errorf("repository URL %q: want s3://bucket/prefix", u)
	}
	if p.Port() != "" || p.RawQuery != "" || p.Fragment != "" || p.Opaque != "" {
		return "", "", fmt.Errorf("repository URL %q: want s3://bucket/prefix, with no port, query or fragment (the endpoint comes from AWS_ENDPOINT_URL)", u)
	}
	if err := s3utils.CheckValidBucketName(p.Host); err != nil {
		return "", "", fmt.Errorf("repository URL %q: bucket %q: %w", u, p.Host, err)
	}
	prefix = strings.TrimSuffix(strings.TrimPrefix(p.Path, "/"), "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return "", "", fmt.Errorf("repository URL %q: prefix %q has an empty, . or .. segment", u, prefix)
			}
		}
	}
	return p.Host, prefix, nil
}

// ConfigFromEnv reads the standard AWS settings, the way the AWS CLI does,
// through getenv (os.Getenv in production):
//
//   - endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else
//     DefaultEndpoint; any endpoint set (other than *.amazonaws.com) is
//     addressed path-style;
//   - region: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region
//     in the config file (AWS_CONFIG_FILE, default ~/.aws/config), else
//     DefaultRegion;
//   - credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
//     AWS_SESSION_TOKEN, else profile AWS_PROFILE (default "default") of the
//     shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
//     ~/.aws/credentials), else the instance's IAM role;
//   - bulwark's own: BULWARK_S3_SSE (AES256 or aws:kms),
//     BULWARK_S3_SSE_KMS_KEY_ID, BULWARK_S3_CA_FILE and
//     BULWARK_S3_MAX_IN_FLIGHT.
//
// It reads the config file if it exists; a missing file is not an error.
// Bucket and Prefix are left empty: set them from ParseURL. Errors name the
// variables at fault, never their secret values.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	var err error
	if c.Endpoint, c.PathStyle, err = endpointFromEnv(getenv); err != nil {
		return Config{}, err
	}
	c.Profile = cmp.Or(getenv("AWS_PROFILE"), "default")
	home := getenv("HOME")
	c.CredentialsFile = getenv("AWS_SHARED_CREDENTIALS_FILE")
	if c.CredentialsFile == "" && home != "" {
		c.CredentialsFile = filepath.Join(home, ".aws", "credentials")
	}
	if c.Region, err = regionFromEnv(getenv, home, c.Profile); err != nil {
		return Config{}, err
	}
	c.AccessKey = cmp.Or(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_ACCESS_KEY"))
	c.SecretKey = Secret(cmp.Or(getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_KEY")))
	c.SessionToken = Secret(getenv("AWS_SESSION_TOKEN"))
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return Config{}, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
	}
	c.SSE, c.SSEKMSKeyID = getenv("BULWARK_S3_SSE"), getenv("BULWARK_S3_SSE_KMS_KEY_ID")
	switch {
	case c.SSE != "" && c.SSE != SSES3 && c.SSE != SSEKMS:
		return Config{}, fmt.Errorf("BULWARK_S3_SSE=%q: want %s or %s", c.SSE, SSES3, SSEKMS)
	case c.SSEKMSKeyID != "" && c.SSE != SSEKMS:
		return Config{}, fmt.Errorf("BULWARK_S3_SSE_KMS_KEY_ID is set but BULWARK_S3_SSE is not %s", SSEKMS)
	}
	c.CAFile = getenv("BULWARK_S3_CA_FILE")
	if v := getenv("BULWARK_S3_MAX_IN_FLIGHT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Config{}, fmt.Errorf("BULWARK_S3_MAX_IN_FLIGHT=%q: want a positive integer", v)
		}
		c.MaxInFlight = n
	}
	return c, nil
}

// endpointFromEnv returns the endpoint URL and whether to address it
// path-style.
func endpointFromEnv(getenv func(string) string) (endpoint string, pathStyle bool, err error) {
	name := "AWS_ENDPOINT_URL_S3"
	raw := getenv(name)
	if raw == "" {
		name = "AWS_ENDPOINT_URL"
		raw = getenv(name)
	}
	if raw == "" {
		return DefaultEndpoint, false, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		// The value may hold credentials: do not repeat it.
		return "", false, fmt.Errorf("%s is not an http:// or https:// URL without credentials", name)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", false, fmt.Errorf("%s=%q: want http://host[:port] or https://host[:port]", name, raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("%s=%q: want no path or query after host[:port]", name, raw)
	}
	aws := u.Hostname() == "amazonaws.com" || strings.HasSuffix(u.Hostname(), ".amazonaws.com")
	return u.Scheme + "://" + u.Host, !aws, nil
}

func regionFromEnv(getenv func(string) string, home, profile string) (string, error) {
	if r := cmp.Or(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")); r != "" {
		return r, nil
	}
	file := getenv("AWS_CONFIG_FILE")
	if file == "" && home != "" {
		file = filepath.Join(home, ".aws", "config")
	}
	if file == "" {
		return DefaultRegion, nil
	}
	r, err := profileRegion(file, profile)
	if err != nil {
		return "", err
	}
	return cmp.Or(r, DefaultRegion), nil
}

// profileRegion returns the region of profile in an AWS config file: the
// section [default] or [profile NAME]. A missing file has no region.
func profileRegion(file, profile string) (string, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("AWS config file: %w", err)
	}
	defer f.Close()
	want := map[string]bool{"profile " + profile: true}
	if profile == "default" {
		want["default"] = true
	}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			name := strings.TrimSpace(strings.Trim(line, "[]"))
			in = want[strings.Join(strings.Fields(name), " ")]
		case in:
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.TrimSpace(k) == "region" {
				return strings.TrimSpace(v), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("AWS config file %s: %w", file, err)
	}
	return "", nil
}

func (c Config) withDefaults() Config {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.PartSize <= 0 {
		c.PartSize = DefaultPartSize
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = DefaultResponseTimeout
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	return c
}

func (c Config) validate() error {
	if err := s3utils.CheckValidBucketName(c.Bucket); err != nil {
		return fmt.Errorf("bucket %q: %w", c.Bucket, err)
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") {
		return fmt.Errorf("prefix %q: want no leading or trailing slash", c.Prefix)
	}
	switch c.SSE {
	case "", SSES3, SSEKMS:
	default:
		return fmt.Errorf("server-side encryption %q: want %s or %s", c.SSE, SSES3, SSEKMS)
	}
	if c.PartSize < 5<<20 {
		return fmt.Errorf("part size %d: S3 wants at least 5 MiB", c.PartSize)
	}
	return nil
}
