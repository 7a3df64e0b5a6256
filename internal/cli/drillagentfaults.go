package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/bulwarkdb/bulwark/internal/agent"
	"github.com/bulwarkdb/bulwark/internal/drill"
	"github.com/bulwarkdb/bulwark/internal/plan"
)

// agentFaults injects a drill's faults through the nodes' agents (POST
// /drill/fault; agents started with --drill-faults), so the cluster may
// run anywhere the drill can reach its agents' REST API. A hang or a node
// loss lasts hold: the agent's helper ends it, not the drill, since the
// node cannot be reached meanwhile.
type agentFaults struct {
	// ctx is the drill's: once it ends (Ctrl-C), Thaw and Heal wait no
	// more; the helpers end their faults on their own.
	ctx   context.Context
	c     *plan.Cluster
	token string
	http  *http.Client
	hold  time.Duration

	mu   sync.Mutex
	ends map[string]time.Time // node → when its hang or loss ends
}

var _ drill.Faults = (*agentFaults)(nil)

// newAgentFaults checks that the plan lets the drill call its agents.
func newAgentFaults(ctx context.Context, c *plan.Cluster, hold time.Duration) (*agentFaults, error) {
	if c.APITokenFile == "" {
		return nil, usageError{errors.New("--faults agents calls the agents' authenticated POST /drill/fault, and the plan has no cluster.api_token_file")}
	}
	token, err := readToken(c.APITokenFile)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{}
	if c.APITLS.CertFile != "" {
		if tr.TLSClientConfig, err = (plan.TLS{CAFile: c.APITLS.CAFile}).ClientConfig(); err != nil {
			return nil, fmt.Errorf("API TLS: %w", err)
		}
	}
	return &agentFaults{ctx: ctx, c: c, token: token, hold: hold, ends: map[string]time.Time{},
		http: &http.Client{Timeout: 5 * time.Second, Transport: tr}}, nil
}

// ask posts a fault to node's agent.
func (f *agentFaults) ask(node, fault string, hold time.Duration) error {
	n, ok := f.c.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in the plan", node)
	}
	body, _ := json.Marshal(agent.FaultRequest{Fault: fault, Seconds: hold.Seconds()})
	req, err := http.NewRequest(http.MethodPost, apiURL(f.c, n)+"/drill/fault", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s's agent: %w", node, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		if json.Unmarshal(msg, &e) == nil && e.Error != "" {
			msg = []byte(e.Error)
		}
		return fmt.Errorf("%s's agent refused the %s fault (%s): %s", node, fault, resp.Status, bytes.TrimSpace(msg))
	}
	if hold > 0 {
		f.mu.Lock()
		f.ends[node] = time.Now().Add(hold + time.Second) // and the helper's own start and stop
		f.mu.Unlock()
	}
	return nil
}

func (f *agentFaults) Crash(node string) error    { return f.ask(node, agent.FaultCrash, 0) }
func (f *agentFaults) KillNode(node string) error { return f.ask(node, agent.FaultNodeLoss, f.hold) }
func (f *agentFaults) Freeze(node string) error   { return f.ask(node, agent.FaultHang, f.hold) }

// Thaw waits for the node's hang to end: its helper ends it after hold.
func (f *agentFaults) Thaw(node string) error {
	f.mu.Lock()
	end := f.ends[node]
	f.mu.Unlock()
	return f.waitUntil(f.ctx, end)
}

// waitUntil waits until t, or until ctx or the drill's context ends.
func (f *agentFaults) waitUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.ctx.Done():
		return f.ctx.Err()
	case <-timer.C:
		return nil
	}
}

func (f *agentFaults) KillEtcd(string) (string, error) {
	return "", errors.New("etcd-member-loss kills an etcd member that bulwark up runs on this machine; the agents cannot (use --faults local)")
}

func (f *agentFaults) Partition(string) error {
	return errors.New("network-partition cuts the links of a cluster made by bulwark up --links; the agents cannot (use --faults local)")
}

// Heal waits until every hang and node loss has ended; the agents come
// back by themselves, and the drill then waits for a healthy cluster.
func (f *agentFaults) Heal(ctx context.Context) error {
	f.mu.Lock()
	var last time.Time
	for _, end := range f.ends {
		if end.After(last) {
			last = end
		}
	}
	clear(f.ends)
	f.mu.Unlock()
	return f.waitUntil(ctx, last)
}
