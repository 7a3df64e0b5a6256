package s3store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwarkdb/bulwark/internal/repo/s3store"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		name, url      string
		bucket, prefix string
		err            string // substring; "" means success
	}{
		{name: "bucket only", url: "s3://backups", bucket: "backups"},
		{name: "bucket and slash", url: "s3://backups/", bucket: "backups"},
		{name: "prefix", url: "s3://backups/pg/payments", bucket: "backups", prefix: "pg/payments"},
		{name: "trailing slash", url: "s3://backups/pg/", bucket: "backups", prefix: "pg"},
		{name: "dotted bucket", url: "s3://my.backups/x", bucket: "my.backups", prefix: "x"},
		{name: "other scheme", url: "file:///srv/repo", err: "want s3://bucket/prefix"},
		{name: "no bucket", url: "s3:///prefix", err: "bucket"},
		{name: "bad bucket", url: "s3://B_/x", err: "bucket"},
		{name: "port", url: "s3://backups:9000/x", err: "no port"},
		{name: "query", url: "s3://backups/x?region=eu", err: "no port, query"},
		{name: "double slash", url: "s3://backups/a//b", err: "empty, . or .."},
		{name: "dot dot", url: "s3://backups/a/../b", err: "empty, . or .."},
		{name: "credentials", url: "s3://AKIAXXXX:hunter2@backups/x", err: "must not hold credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, p, err := s3store.ParseURL(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseURL(%q): got %q, %q, %v; want an error with %q", tc.url, b, p, err, tc.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("ParseURL error repeats the secret: %v", err)
				}
				return
			}
			if err != nil || b != tc.bucket || p != tc.prefix {
				t.Fatalf("ParseURL(%q): got %q, %q, %v; want %q, %q", tc.url, b, p, err, tc.bucket, tc.prefix)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	home := t.TempDir()
	write(t, filepath.Join(home, ".aws", "config"), `
# comment
[default]
region = eu-west-3

[profile prod]
output = json
region=ap-south-1
[prod]
region = wrong-section
`)
	other := filepath.Join(t.TempDir(), "other-config")
	write(t, other, "[profile  prod]\nregion = sa-east-1\n")
	def := func(c s3store.Config) s3store.Config {
		c.Endpoint = cmpOr(c.Endpoint, s3store.DefaultEndpoint)
		c.Profile = cmpOr(c.Profile, "default")
		c.CredentialsFile = cmpOr(c.CredentialsFile, filepath.Join(home, ".aws", "credentials"))
		return c
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want s3store.Config
		err  string
	}{
		{name: "defaults: region from the config file", want: def(s3store.Config{Region: "eu-west-3"})},
		{name: "no home", env: map[string]string{"HOME": ""}, want: s3store.Config{Endpoint: s3store.DefaultEndpoint, Region: "us-east-1", Profile: "default"}},
		{name: "AWS_REGION wins", env: map[string]string{"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "x"}, want: def(s3store.Config{Region: "us-west-2"})},
		{name: "AWS_DEFAULT_REGION", env: map[string]string{"AWS_DEFAULT_REGION": "eu-central-1"}, want: def(s3store.Config{Region: "eu-central-1"})},
		{name: "profile region", env: map[string]string{"AWS_PROFILE": "prod"}, want: def(s3store.Config{Region: "ap-south-1", Profile: "prod"})},
		{name: "profile without region", env: map[string]string{"AWS_PROFILE": "dev"}, want: def(s3store.Config{Region: "us-east-1", Profile: "dev"})},
		{name: "AWS_CONFIG_FILE", env: map[string]string{"AWS_PROFILE": "prod", "AWS_CONFIG_FILE": other}, want: def(s3store.Config{Region: "sa-east-1", Profile: "prod"})},
		{name: "missing config file", env: map[string]string{"AWS_CONFIG_FILE": filepath.Join(home, "nope")}, want: def(s3store.Config{Region: "us-east-1"})},
		{name: "credentials file", env: map[string]string{"AWS_SHARED_CREDENTIALS_FILE": "/etc/creds"}, want: def(s3store.Config{Region: "eu-west-3", CredentialsFile: "/etc/creds"})},
		{name: "static credentials", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cret", "AWS_SESSION_TOKEN": "tok"},
			want: def(s3store.Config{Region: "eu-west-3", AccessKey: "AKIA1", SecretKey: "s3cret", SessionToken: "tok"})},
		{name: "half credentials", env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIA1"}, err: "must be set together"},
		{name: "endpoint", env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, want: def(s3store.Config{Region: "eu-west-3", Endpoint: "http://127.0.0.1:9000", PathStyle: true})},
		{name: "S3 endpoint wins", env: map[string]string{"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "https://minio.internal/"},
			want: def(s3store.Config{Region: "eu-west-3", Endpoint: "https://minio.internal", PathStyle: true})},
		{name: "AWS endpoint is virtual-host", env: map[string]string{"AWS_ENDPOINT_URL_S3": "https://s3.eu-west-3.amazonaws.com"},
			want: def(s3store.Config{Region: "eu-west-3", Endpoint: "https://s3.eu-west-3.amazonaws.com"})},
		{name: "endpoint scheme", env: map[string]string{"AWS_ENDPOINT_URL": "minio:9000"}, err: "AWS_ENDPOINT_URL"},
		{name: "endpoint path", env: map[string]string{"AWS_ENDPOINT_URL": "http://minio:9000/bucket"}, err: "no path"},
		{name: "endpoint credentials", env: map[string]string{"AWS_ENDPOINT_URL": "http://u:hunter2@minio:9000"}, err: "without credentials"},
		{name: "SSE-S3", env: map[string]string{"BULWARK_S3_SSE": "AES256"}, want: def(s3store.Config{Region: "eu-west-3", SSE: s3store.SSES3})},
		{name: "SSE-KMS", env: map[string]string{"BULWARK_S3_SSE": "aws:kms", "BULWARK_S3_SSE_KMS_KEY_ID": "arn:k"},
			want: def(s3store.Config{Region: "eu-west-3", SSE: s3store.SSEKMS, SSEKMSKeyID: "arn:k"})},
		{name: "bad SSE", env: map[string]string{"BULWARK_S3_SSE": "yes"}, err: "BULWARK_S3_SSE"},
		{name: "KMS key without KMS", env: map[string]string{"BULWARK_S3_SSE_KMS_KEY_ID": "k"}, err: "BULWARK_S3_SSE_KMS_KEY_ID"},
		{name: "CA file and in flight", env: map[string]string{"BULWARK_S3_CA_FILE": "/ca.pem", "BULWARK_S3_MAX_IN_FLIGHT": "4"},
			want: def(s3store.Config{Region: "eu-west-3", CAFile: "/ca.pem", MaxInFlight: 4})},
		{name: "bad in flight", env: map[string]string{"BULWARK_S3_MAX_IN_FLIGHT": "0"}, err: "BULWARK_S3_MAX_IN_FLIGHT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"HOME": home}
			for k, v := range tc.env {
				env[k] = v
			}
			got, err := s3store.ConfigFromEnv(func(k string) string { return env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error repeats a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("config (-want +got):\n%s", d)
			}
		})
	}
}

func TestConfigUnreadableFile(t *testing.T) {
	dir := t.TempDir() // a directory is not a readable config file
	_, err := s3store.ConfigFromEnv(func(k string) string {
		return map[string]string{"AWS_CONFIG_FILE": dir}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "AWS config file") {
		t.Fatalf("got %v, want an error about the AWS config file", err)
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	c := s3store.Config{Bucket: "b", AccessKey: "AKIA1", SecretKey: "hunter2", SessionToken: "tok-hunter2"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, c); strings.Contains(s, "hunter2") {
			t.Errorf("Sprintf(%q, config) shows a secret: %s", f, s)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
