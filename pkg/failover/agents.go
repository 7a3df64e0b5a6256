package failover

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkdb/bulwark/internal/cluster"
)

// AgentsSource follows a cluster by asking its agents' REST APIs (GET
// /cluster) every Interval, for clients that cannot reach etcd. It
// trusts the answer with the highest term, and confirms its leader as
// EtcdSource does.
type AgentsSource struct {
	// URLs are the agents' base URLs, such as https://10.0.1.1:8008.
	URLs []string
	// HTTP asks them; nil: a client with a 1 s timeout.
	HTTP *http.Client
	// Interval between rounds; default 250 ms.
	Interval time.Duration
	Logger   *slog.Logger // nil: no logs
}

// agentView is the part of an agent's GET /cluster answer a client needs.
type agentView struct {
	Leader  *cluster.Leader  `json:"leader"`
	Members []cluster.Member `json:"members"`
}

// Follow implements Source.
func (s *AgentsSource) Follow(ctx context.Context, update func(Topology)) error {
	if len(s.URLs) == 0 {
		return errors.New("failover: AgentsSource needs URLs")
	}
	hc := agentClient(s.HTTP)
	log, check := logger(s.Logger), newLeaderCheck(hc)
	var last *Topology
	var highest uint64
	for {
		wait := cmp.Or(s.Interval, 250*time.Millisecond)
		if v, err := s.round(ctx, hc); err != nil {
			log.Warn("no agent answered; keeping the last topology", "err", err)
		} else {
			members := make(map[string]cluster.Member, len(v.Members))
			for _, m := range v.Members {
				members[m.Name] = m
			}
			t, settled := membersTopology(ctx, v.Leader, members, check.ok)
			// Without a leader, the highest term seen, so that followers
			// drop the old primary rather than take this for a stale view.
			highest = max(highest, t.Term)
			t.Term = max(t.Term, highest)
			if !settled {
				wait = min(wait, 100*time.Millisecond)
			}
			last = report(last, t, update)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// round asks every agent at once and keeps the view with the highest
// leader term; a view without a leader counts only when no agent knows one.
func (s *AgentsSource) round(ctx context.Context, hc *http.Client) (agentView, error) {
	var (
		mu    sync.Mutex
		best  *agentView
		errs  []error
		wg    sync.WaitGroup
		fetch = func(url string) {
			v, err := getView(ctx, hc, url)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if best == nil || rank(v) > rank(*best) {
				best = &v
			}
		}
	)
	for _, u := range s.URLs {
		wg.Go(func() { fetch(u) })
	}
	wg.Wait()
	if best == nil {
		return agentView{}, errors.Join(errs...)
	}
	return *best, nil
}

func rank(v agentView) uint64 {
	if v.Leader == nil {
		return 0
	}
	return v.Leader.Term + 1
}

func getView(ctx context.Context, hc *http.Client, url string) (agentView, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, "/")+"/cluster", nil)
	if err != nil {
		return agentView{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return agentView{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentView{}, fmt.Errorf("%s/cluster: %s", url, resp.Status)
	}
	var v agentView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return agentView{}, fmt.Errorf("%s/cluster: %w", url, err)
	}
	return v, nil
}
