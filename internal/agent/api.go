package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwarkdb/bulwark/internal/cluster"
)

// The REST API answers health checks the way Patroni's does, so HAProxy,
// pgbouncer and Kubernetes probes written for Patroni work unchanged, but
// every answer comes from PostgreSQL's real state, probed for the request
// (at most 100 ms old), and from the agent's current leadership and term:
// a node whose PostgreSQL crashed, or whose lease lapsed, is never /primary.

func (a *Agent) startAPI() error {
	if a.o.APIListen == "" {
		return nil
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/primary", "/leader", "/read-write", "/master"} {
		mux.HandleFunc("GET "+p, a.health(a.isPrimary))
	}
	mux.HandleFunc("GET /replica", a.health(a.isReplica))
	mux.HandleFunc("GET /read-only", a.health(func(v probe, r *http.Request) bool { return a.isPrimary(v, r) || a.isReplica(v, r) }))
	mux.HandleFunc("GET /sync", a.health(a.isSync(true)))
	mux.HandleFunc("GET /synchronous", a.health(a.isSync(true)))
	mux.HandleFunc("GET /async", a.health(a.isSync(false)))
	mux.HandleFunc("GET /asynchronous", a.health(a.isSync(false)))
	mux.HandleFunc("GET /health", a.health(func(v probe, _ *http.Request) bool {
		return v.member.Role != cluster.RoleNone && v.member.State != "unreachable"
	}))
	mux.HandleFunc("GET /readiness", a.health(func(v probe, r *http.Request) bool { return a.isPrimary(v, r) || a.isReplica(v, r) }))
	mux.HandleFunc("GET /liveness", a.liveness)
	mux.HandleFunc("GET /status", a.handleStatus)
	mux.HandleFunc("GET /patroni", a.handleStatus)
	mux.HandleFunc("GET /cluster", a.handleCluster)
	mux.Handle("GET /metrics", a.metricsHandler())
	mux.HandleFunc("POST /failsafe", a.auth(a.handleFailsafe))
	mux.HandleFunc("POST /switchover", a.auth(a.handleSwitchover))
	mux.HandleFunc("POST /drill/fault", a.auth(a.handleFault))
	ln, err := net.Listen("tcp", a.o.APIListen)
	if err != nil {
		return fmt.Errorf("REST API: %w", err)
	}
	a.api = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: a.o.APITLS}
	go func() {
		var err error
		if a.o.APITLS != nil {
			err = a.api.ServeTLS(ln, "", "")
		} else {
			err = a.api.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("REST API stopped", "err", err)
		}
	}()
	return nil
}

func (a *Agent) stopAPI() {
	if a.api == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a.api.Shutdown(ctx)
}

// probe is a fresh view for one request.
type probe struct {
	member  cluster.Member
	leading bool
	fenced  bool
	term    uint64
	leader  *cluster.Leader
	sync    *cluster.Sync
	leadLSN uint64
	current bool // the agent's view of the leadership is fresh (etcd read within the TTL, or a live failsafe)
}

func (a *Agent) probe(r *http.Request) probe {
	a.mu.Lock()
	fresh := time.Since(a.st.localAt) < 100*time.Millisecond
	a.mu.Unlock()
	if !fresh {
		v, err := a.probeLocal(r.Context())
		if err != nil {
			a.log.Debug("API probe", "err", err)
		}
		a.mu.Lock()
		a.st.view, a.st.localAt = v, time.Now()
		a.mu.Unlock()
	}
	m := a.member()
	a.mu.Lock()
	defer a.mu.Unlock()
	p := probe{member: m, leading: a.st.leading, fenced: a.st.fenced, term: a.st.term, leader: a.st.snap.Leader, sync: a.st.snap.Sync}
	if p.leader != nil {
		if lm, ok := a.st.snap.Members[p.leader.Name]; ok {
			p.leadLSN = uint64(lm.LSN)
		}
	}
	p.current = time.Now().Before(a.fenceDeadlineLocked())
	return p
}

func (a *Agent) isPrimary(v probe, _ *http.Request) bool {
	return v.leading && v.current && !v.fenced && v.member.Role == cluster.RolePrimary && v.member.State == "running"
}

// isReplica: a running replica streaming from the current leader, within
// ?lag= (bytes, or with a unit: 16MB) of the leader's published position.
func (a *Agent) isReplica(v probe, r *http.Request) bool {
	if v.leading || v.member.Role != cluster.RoleReplica || !v.member.Streaming || v.leader == nil || v.member.Following != v.leader.Name {
		return false
	}
	if s := r.URL.Query().Get("lag"); s != "" {
		max, err := parseLag(s)
		if err != nil {
			return false
		}
		if lag := int64(v.leadLSN) - int64(v.member.LSN); lag > max {
			return false
		}
	}
	return true
}

func parseLag(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		s string
		m int64
	}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.s); ok {
			s, mult = n, u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n * mult, err
}

func (a *Agent) isSync(want bool) func(probe, *http.Request) bool {
	return func(v probe, r *http.Request) bool {
		if !a.isReplica(v, r) {
			return false
		}
		sync := v.sync != nil && v.sync.Quorum > 0 && slices.Contains(v.sync.Standbys, v.member.Name)
		return sync == want
	}
}

// health serves a check: 200 when ok holds, 503 otherwise, with the
// member's state as JSON either way (as Patroni does).
func (a *Agent) health(ok func(probe, *http.Request) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := a.probe(r)
		code := http.StatusServiceUnavailable
		if ok(v, r) {
			code = http.StatusOK
		}
		w.Header().Set("X-Bulwark-Term", strconv.FormatUint(v.term, 10))
		if r.Method == http.MethodHead {
			w.WriteHeader(code)
			return
		}
		statusJSON(w, code, struct {
			cluster.Member
			Leading bool `json:"leading"`
			Fenced  bool `json:"fenced"`
		}{v.member, v.leading && v.current, v.fenced})
	}
}

func (a *Agent) liveness(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	age := time.Since(a.st.stepAt) // not localAt: API requests refresh that
	ttl := time.Duration(a.st.cfg.TTL)
	a.mu.Unlock()
	code := http.StatusOK
	if age > ttl {
		code = http.StatusServiceUnavailable // the main loop is stuck
	}
	statusJSON(w, code, map[string]any{"loop_age_s": age.Seconds()})
}

// handleStatus answers with the member's fresh state: peers use it to
// compare positions in an election.
func (a *Agent) handleStatus(w http.ResponseWriter, r *http.Request) {
	v := a.probe(r)
	statusJSON(w, http.StatusOK, v.member)
}

func (a *Agent) handleCluster(w http.ResponseWriter, _ *http.Request) {
	statusJSON(w, http.StatusOK, a.Status())
}

// Status returns the agent's view of itself and the cluster.
func (a *Agent) Status() Status {
	m := a.member()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := Status{Member: m, Leading: a.st.leading, Term: a.st.term, Fenced: a.st.fenced, Action: a.st.lastAction,
		Sync: a.st.snap.Sync, Config: a.st.cfg, Leader: a.st.snap.Leader}
	for _, name := range slices.Sorted(maps.Keys(a.st.snap.Members)) {
		s.Members = append(s.Members, a.st.snap.Members[name])
	}
	return s
}

// auth admits a request with the bearer token, or with a client
// certificate the API's TLS configuration verified.
func (a *Agent) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			h(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if a.o.APIToken == "" || !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(a.o.APIToken)) != 1 {
			statusJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token or client certificate is required"})
			return
		}
		h(w, r)
	}
}

func (a *Agent) handleFailsafe(w http.ResponseWriter, r *http.Request) {
	var req failsafeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		statusJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if err := a.confirmFailsafe(r.Context(), req); err != nil {
		statusJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
		return
	}
	statusJSON(w, http.StatusOK, map[string]string{"confirmed": req.Leader})
}

// handleSwitchover stores a switchover request, as `bulwark cluster
// switchover` does: {"leader": "...", "candidate": "...", "scheduled_at": "..."}
// (Patroni's field names).
func (a *Agent) handleSwitchover(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Leader    string    `json:"leader"`
		Candidate string    `json:"candidate"`
		At        time.Time `json:"scheduled_at"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		statusJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.o.Store.PutRequest(ctx, cluster.Request{Kind: "switchover", From: body.Leader, To: body.Candidate, At: body.At}); err != nil {
		statusJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	statusJSON(w, http.StatusAccepted, map[string]string{"status": "switchover requested"})
}

func (a *Agent) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func(Status) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bulwark_" + name, Help: help,
			ConstLabels: prometheus.Labels{"node": a.o.Self.Name}}, func() float64 { return f(a.Status()) }))
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	gauge("leader", "1 if this node holds the leader key", func(s Status) float64 { return b(s.Leading) })
	gauge("fenced", "1 if this node's PostgreSQL is fenced", func(s Status) float64 { return b(s.Fenced) })
	gauge("term", "the leader term this node acts in", func(s Status) float64 { return float64(s.Term) })
	gauge("timeline", "PostgreSQL's timeline", func(s Status) float64 { return float64(s.Member.Timeline) })
	gauge("wal_lsn_bytes", "WAL position (written on a primary, received on a replica)", func(s Status) float64 { return float64(s.Member.LSN) })
	gauge("streaming", "1 if this replica streams", func(s Status) float64 { return b(s.Member.Streaming) })
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// statusJSON writes v as the JSON body of a response.
func statusJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
