package s3store

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// newClient builds the minio-go client of c (which has its defaults). It
// reads c.CAFile; it makes no request.
func newClient(c Config) (*minio.Client, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("S3 endpoint: want http://host[:port] or https://host[:port] without credentials")
	}
	secure := u.Scheme == "https"
	tr, err := newTransport(c, secure)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto // virtual-host on AWS, unless a dotted bucket name would break TLS
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	return minio.New(u.Host, &minio.Options{
		Creds:        credentialChain(c),
		Secure:       secure,
		Transport:    tr,
		Region:       c.Region, // set, so that minio-go never asks the bucket's location first
		BucketLookup: lookup,
		MaxRetries:   c.MaxAttempts, // minio-go counts attempts: 1 means no retry
	})
}

// credentialChain tries static credentials (from the environment), then the
// shared credentials file, then the instance's IAM role (EC2, ECS, EKS).
// Retrieval happens at the first request, through the client's transport.
// The IAM step reads its own variables (AWS_CONTAINER_CREDENTIALS_*,
// AWS_WEB_IDENTITY_TOKEN_FILE…) from the process environment: minio-go
// offers no way to inject them.
func credentialChain(c Config) *credentials.Credentials {
	var providers []credentials.Provider
	if c.AccessKey != "" {
		providers = append(providers, &credentials.Static{Value: credentials.Value{
			AccessKeyID:     c.AccessKey,
			SecretAccessKey: string(c.SecretKey),
			SessionToken:    string(c.SessionToken),
			SignerType:      credentials.SignatureV4,
		}})
	}
	if c.CredentialsFile != "" {
		providers = append(providers, &credentials.FileAWSCredentials{Filename: c.CredentialsFile, Profile: c.Profile})
	}
	providers = append(providers, &credentials.IAM{})
	return credentials.NewChainCredentials(providers)
}

// newTransport is minio-go's DefaultTransport with bounds that make a dead
// endpoint fail in bounded time (see the package comment), and c.CAFile
// trusted on top of the system's CAs.
func newTransport(c Config, secure bool) (*http.Transport, error) {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   c.DialTimeout,
			KeepAlive: 15 * time.Second,
		}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   c.MaxInFlight,
		ResponseHeaderTimeout: c.ResponseTimeout,
		IdleConnTimeout:       time.Minute,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 10 * time.Second,
		// Objects are stored as given: never let the transport gunzip one.
		DisableCompression: true,
	}
	if !secure {
		return tr, nil
	}
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("S3 CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool() // no system pool: trust the given CAs only
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("S3 CA file %s holds no PEM certificate", c.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}
