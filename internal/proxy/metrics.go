package proxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwarkdb/bulwark/pkg/failover"
)

// metrics are the proxy's Prometheus series. Labels: port (rw, ro), node
// (a node's name), route (direct, broadcast), direction (to_server,
// to_client).
type metrics struct {
	sessions *prometheus.GaugeVec
	waiting  *prometheus.GaugeVec
	routed   *prometheus.CounterVec
	refused  *prometheus.CounterVec
	closed   *prometheus.CounterVec
	cancels  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	updates  prometheus.Counter
	term     prometheus.Gauge
	primary  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_proxy_sessions",
			Help: "Client sessions relayed to a backend now."}, []string{"port"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_proxy_waiting_connections",
			Help: "New connections held waiting for a backend (a failover in progress)."}, []string{"port"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_proxy_connections_routed_total",
			Help: "Connections routed, by port and node."}, []string{"port", "node"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_proxy_connections_refused_total",
			Help: "Connections refused: no backend within the wait, or the backend failed."}, []string{"port"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_proxy_sessions_closed_total",
			Help: "Sessions closed because the topology no longer allowed their backend."}, []string{"port"}),
		cancels: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_proxy_cancel_requests_total",
			Help: "Cancel requests: direct to the session's backend, or broadcast to every node for an unknown key."}, []string{"route"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_proxy_bytes_total",
			Help: "Bytes relayed, counted when each session ends."}, []string{"port", "direction"}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_proxy_topology_updates_total",
			Help: "Topologies the source reported."}),
		term: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_proxy_term",
			Help: "The leader term of the current topology."}),
		primary: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_proxy_primary",
			Help: "1 when the current topology has a primary, 0 during a failover."}),
	}
	for _, c := range []prometheus.Collector{m.sessions, m.waiting, m.routed, m.refused, m.closed, m.cancels, m.bytes, m.updates, m.term, m.primary} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("proxy: register metrics: %w", err)
		}
	}
	for _, acc := range []access{readWrite, readOnly} { // present from the start, at 0
		m.sessions.WithLabelValues(acc.String())
		m.closed.WithLabelValues(acc.String())
	}
	return m, nil
}

// topology records an update and the sessions it closed by port.
func (m *metrics) topology(t failover.Topology, closed map[access]int) {
	m.updates.Inc()
	m.term.Set(float64(t.Term))
	if t.Primary != nil {
		m.primary.Set(1)
	} else {
		m.primary.Set(0)
	}
	for acc, n := range closed {
		m.closed.WithLabelValues(acc.String()).Add(float64(n))
	}
}
