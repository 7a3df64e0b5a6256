package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// Handler serves GET (and HEAD) /health and /metrics. Both only read: they
// need no authentication.
//
// /health answers 200 when the proxy can route a new connection now, 503
// otherwise, with the topology and the sessions as JSON either way. With a
// read-write port, "can route" means there is a primary; with only a
// read-only port, a replica within the lag bound (or, with
// FallbackPrimary, a primary).
func (p *Proxy) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", p.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.o.Registry, promhttp.HandlerOpts{}))
	return mux
}

// Health is the JSON of GET /health.
type Health struct {
	Term     uint64         `json:"term"`
	Primary  *HealthNode    `json:"primary"` // null during a failover
	Replicas []HealthNode   `json:"replicas"`
	Sessions map[string]int `json:"sessions"` // by port: rw, ro
}

// HealthNode is a node in Health.
type HealthNode struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	LagBytes int64  `json:"lag_bytes"`
}

func healthNode(n failover.Node) HealthNode {
	return HealthNode{Name: n.Name, Addr: n.Addr, LagBytes: n.LagBytes}
}

func (p *Proxy) health(w http.ResponseWriter, _ *http.Request) {
	t, known, sessions := p.router.state()
	h := Health{Term: t.Term, Replicas: []HealthNode{}, Sessions: map[string]int{}}
	if t.Primary != nil {
		n := healthNode(*t.Primary)
		h.Primary = &n
	}
	for _, n := range t.Replicas {
		h.Replicas = append(h.Replicas, healthNode(n))
	}
	for acc, n := range sessions {
		h.Sessions[acc.String()] = n
	}
	acc := readWrite
	if p.o.ListenRW == "" {
		acc = readOnly
	}
	_, ok := pick(acc, t, p.o.MaxLag, p.o.ROFallback, nil)
	w.Header().Set("Content-Type", "application/json")
	if !known || !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(h)
}
