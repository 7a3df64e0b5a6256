package receive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkdb/bulwark/internal/repo"
	"github.com/bulwarkdb/bulwark/internal/wal"
)

// State is what a receiver last published about itself, for bulwark
// status. It is saved as the repository document of kind "archive" named
// "receiver-<slot>" at most once a second while the receiver runs, and once
// more when it stops.
type State struct {
	Slot            string `json:"slot"`
	ApplicationName string `json:"application_name"`
	Synchronous     bool   `json:"synchronous"`
	// Connected is true while the receiver streams from the server.
	Connected bool           `json:"connected"`
	Timeline  wal.TimelineID `json:"timeline"`
	// ServerLSN is the server's WAL end from its latest message.
	ServerLSN wal.LSN `json:"server_lsn"`
	// FlushedLSN is how far the WAL is durable in the repository: the
	// flush position reported to the server.
	FlushedLSN wal.LSN   `json:"flushed_lsn"`
	Updated    time.Time `json:"updated"`
	// LastError is why the latest connection ended, empty while connected.
	LastError string `json:"last_error,omitempty"`
	// Gaps lists the WAL the receiver could not get because the server had
	// removed it before it was received: a segment name, or
	// "<from>..<to> (n segments)". Each is also logged at level Error when
	// found, and kept across restarts of the receiver.
	Gaps []string `json:"gaps,omitempty"`
}

const (
	docKind      = "archive"
	docPrefix    = "receiver-" // repo.Sync recopies "archive/receiver-" documents on every sync: keep both in step
	saveInterval = time.Second
)

func docName(slot string) string { return docPrefix + slot }

// LoadStates returns the published state of every receiver that has
// written to r, sorted by slot.
func LoadStates(ctx context.Context, r *repo.Repo) ([]State, error) {
	names, err := r.ListDocs(ctx, docKind)
	if err != nil {
		return nil, err
	}
	var out []State
	for _, name := range names {
		if !strings.HasPrefix(name, docPrefix) {
			continue
		}
		var s State
		if err := r.LoadDoc(ctx, docKind, name, &s); err != nil {
			if errors.Is(err, repo.ErrNotFound) {
				continue // removed since the listing
			}
			return nil, fmt.Errorf("load receiver state %s: %w", name, err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b State) int { return cmp.Compare(a.Slot, b.Slot) })
	return out, nil
}

// publisher holds a receiver's State and saves it to the repository. The
// streaming goroutine updates it; a separate goroutine saves it, so that a
// slow store never delays a flush acknowledgement.
type publisher struct {
	r    *repo.Repo
	name string

	mu      sync.Mutex
	state   State
	version uint64 // bumped by every change
	saved   uint64 // version last saved
}

// update applies fn to the state under the lock.
func (p *publisher) update(fn func(*State)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(&p.state)
	p.version++
}

// snapshot returns a copy of the state.
func (p *publisher) snapshot() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state
	s.Gaps = slices.Clone(s.Gaps)
	return s
}

// save stores the state if it changed since the last save.
func (p *publisher) save(ctx context.Context) error {
	p.mu.Lock()
	if p.version == p.saved {
		p.mu.Unlock()
		return nil
	}
	v := p.version
	p.state.Updated = time.Now().UTC()
	s := p.state
	s.Gaps = slices.Clone(s.Gaps)
	p.mu.Unlock()
	if err := p.r.SaveDoc(ctx, docKind, p.name, s); err != nil {
		return fmt.Errorf("save receiver state: %w", err)
	}
	p.mu.Lock()
	p.saved = max(p.saved, v)
	p.mu.Unlock()
	return nil
}

// run saves the state at most once per saveInterval until ctx ends. Save
// errors are logged by warn and retried on the next tick.
func (p *publisher) run(ctx context.Context, warn func(error)) {
	t := time.NewTicker(saveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.save(ctx); err != nil && ctx.Err() == nil {
				warn(err)
			}
		}
	}
}

// addGap records a gap unless one starting at the same segment is known.
func (p *publisher) addGap(g string, from string) {
	p.update(func(s *State) {
		for i, old := range s.Gaps {
			if strings.HasPrefix(old, from) {
				s.Gaps[i] = g
				return
			}
		}
		s.Gaps = append(s.Gaps, g)
	})
}
