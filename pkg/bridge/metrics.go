package bridge

import "github.com/prometheus/client_golang/prometheus"

// metrics are the bridge's Prometheus metrics.
type metrics struct {
	received      *prometheus.CounterVec
	forwarded     *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	produce       prometheus.Histogram
	inFlight      prometheus.Gauge
	releases      prometheus.Counter
	produceErrors prometheus.Counter
	staleReleases prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_bridge_received_total", Help: "MQTT messages received, by kind (examples, status).",
		}, []string{"kind"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_bridge_forwarded_total", Help: "Messages written to Kafka and then acked on MQTT, by kind.",
		}, []string{"kind"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_bridge_deadlettered_total", Help: "Messages refused to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgeloop_bridge_produce_seconds", Help: "Latency of one Kafka produce with acks=all, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgeloop_bridge_in_flight", Help: "MQTT messages received and not yet acked.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeloop_bridge_releases_published_total", Help: "Model releases published as retained MQTT messages.",
		}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeloop_bridge_produce_errors_total", Help: "Failed Kafka produce attempts (each is retried).",
		}),
		staleReleases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgeloop_bridge_releases_stale_total", Help: "Model releases not published: older than the retained release of their project.",
		}),
	}
	reg.MustRegister(m.received, m.forwarded, m.deadLettered, m.produce, m.inFlight, m.releases, m.produceErrors, m.staleReleases)
	return m
}
