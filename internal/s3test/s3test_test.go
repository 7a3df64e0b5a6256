package s3test_test

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/bulwarkdb/bulwark/internal/s3test"
)

func TestMain(m *testing.M) { s3test.Main(m) }

func TestKillRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := s3test.Start(t)
	bucket := s.Bucket(t)
	c := s.Client(t)
	if _, err := c.PutObject(ctx, bucket, "a/b", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if _, err := c.StatObject(ctx, bucket, "a/b", minio.StatObjectOptions{}); err == nil {
		t.Fatal("stat on a killed server succeeded")
	}
	s.Restart(t)
	obj, err := c.GetObject(ctx, bucket, "a/b", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil || string(b) != "hello" {
		t.Fatalf("after restart: got %q, %v; want %q", b, err, "hello")
	}
	if b := s.Bucket(t); b == bucket {
		t.Fatalf("Bucket returned %s twice", b)
	}
}

// TestBinaryDoesNotLinkVersity keeps the S3 server test-only.
func TestBinaryDoesNotLinkVersity(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/bulwarkdb/bulwark/cmd/bulwark").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range bytes.Fields(out) {
		if bytes.Contains(dep, []byte("versity")) {
			t.Errorf("cmd/bulwark depends on %s", dep)
		}
	}
}
