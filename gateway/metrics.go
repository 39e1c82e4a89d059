package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics, on the registry it was given.
type metrics struct {
	intake   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, backlog func() int, brokerReady func() bool) (*metrics, error) {
	m := &metrics{
		intake: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fhirgw_intake_messages_total",
			Help: "Messages offered over HTTP or AMQP, by outcome (accepted, duplicate, response, progress, cancellation, invalid, unroutable, conflict, forbidden, error).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fhirgw_intake_duration_seconds",
			Help:    "Time to answer a $process-message POST, by outcome.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
	}
	backlogGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fhirgw_outbox_backlog",
		Help: "Publishes accepted into custody and not yet confirmed by the broker.",
	}, func() float64 { return float64(backlog()) })
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fhirgw_broker_ready",
		Help: "1 while the relay holds a broker connection with the topology declared.",
	}, func() float64 {
		if brokerReady() {
			return 1
		}
		return 0
	})
	for _, c := range []prometheus.Collector{m.intake, m.duration, backlogGauge, ready} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeIntake(outcome string, d time.Duration) {
	m.intake.WithLabelValues(outcome).Inc()
	m.duration.WithLabelValues(outcome).Observe(d.Seconds())
}
