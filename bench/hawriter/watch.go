package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	pollEvery   = 50 * time.Millisecond
	pollTimeout = 300 * time.Millisecond
)

// node is one member's REST API, as named in the watcher's log.
type node struct {
	Name string
	URL  string // base URL; GET URL/primary answers 200 only on the primary
}

// parseNodes parses "[NAME=]URL,...". Without NAME a node is named by the
// URL's host:port.
func parseNodes(s string) ([]node, error) {
	var out []node
	for _, f := range strings.Split(s, ",") {
		name, url, ok := strings.Cut(f, "=")
		if !ok {
			url = f
			name = strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
			name = strings.TrimSuffix(name, "/")
		}
		if name == "" || url == "" || strings.ContainsAny(name, " ,") {
			return nil, fmt.Errorf("--urls: bad node %q", f)
		}
		out = append(out, node{Name: name, URL: strings.TrimSuffix(url, "/")})
	}
	return out, nil
}

// runWatch polls every node's /primary every pollEvery until ctx ends and
// appends a line to path whenever the set answering 200 changes. The line's
// time is the start of the poll round that saw the change: the change
// happened after the previous round started, at most pollEvery+pollTimeout
// earlier.
func runWatch(ctx context.Context, nodes []node, path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open watch log: %w", err)
	}
	client := &http.Client{Timeout: pollTimeout}
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	last := "(none yet)"
	for {
		at := time.Now()
		set := pollPrimaries(ctx, client, nodes)
		if ctx.Err() != nil {
			return f.Close()
		}
		if set != last {
			if err := writeWatchLine(f, at, set); err != nil {
				return fmt.Errorf("write watch log: %w", err)
			}
			log.Info("primaries changed", "primaries", set)
			last = set
		}
		select {
		case <-ctx.Done():
			return f.Close()
		case <-t.C:
		}
	}
}

func writeWatchLine(w io.Writer, at time.Time, set string) error {
	_, err := fmt.Fprintf(w, "%d %s\n", at.UnixNano(), set)
	return err
}

// pollPrimaries asks every node at once and returns the sorted names of those
// that answered 200, comma-separated, or "-" when none did. A timeout or a
// refused connection counts as "not primary".
func pollPrimaries(ctx context.Context, client *http.Client, nodes []node) string {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		set []string
	)
	for _, n := range nodes {
		wg.Go(func() {
			if isPrimary(ctx, client, n.URL) {
				mu.Lock()
				set = append(set, n.Name)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(set) == 0 {
		return "-"
	}
	slices.Sort(set)
	return strings.Join(set, ",")
}

func isPrimary(ctx context.Context, client *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/primary", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body) // lets the connection be reused; its content is not needed
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
