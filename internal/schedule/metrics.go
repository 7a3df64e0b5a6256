package schedule

import "github.com/prometheus/client_golang/prometheus"

// Metrics exports outcomes to Prometheus.
type Metrics struct {
	runs        *prometheus.CounterVec
	lastRun     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
}

// NewMetrics registers the scheduler's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_schedule_runs_total", Help: "Scheduled job runs by outcome (ok, failed, skipped).",
		}, []string{"job", "outcome"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_schedule_last_run_timestamp_seconds", Help: "When the job last started.",
		}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_schedule_last_success_timestamp_seconds", Help: "When the job last started a run that succeeded.",
		}, []string{"job"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_schedule_last_duration_seconds", Help: "How long the job's last run took.",
		}, []string{"job"}),
	}
	reg.MustRegister(m.runs, m.lastRun, m.lastSuccess, m.duration)
	return m
}

// Observe records an outcome.
func (m *Metrics) Observe(o Outcome) {
	switch {
	case o.Skipped:
		m.runs.WithLabelValues(o.Job, "skipped").Inc()
		return
	case o.OK:
		m.runs.WithLabelValues(o.Job, "ok").Inc()
		m.lastSuccess.WithLabelValues(o.Job).Set(float64(o.Start.Unix()))
	default:
		m.runs.WithLabelValues(o.Job, "failed").Inc()
	}
	m.lastRun.WithLabelValues(o.Job).Set(float64(o.Start.Unix()))
	m.duration.WithLabelValues(o.Job).Set(o.Duration)
}
