package agent

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	frames, duplicates, dropped, uploaded, uploadErrors, confirmed prometheus.Counter
	sampled                                                        *prometheus.CounterVec
	infer                                                          prometheus.Histogram
	outboxDepth                                                    prometheus.Gauge
	updates                                                        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeloop_agent_" + name, Help: help})
	}
	m := &metrics{
		frames:       c("frames_total", "Frames inferred."),
		duplicates:   c("duplicates_total", "Frames skipped as look-alikes of a recent upload."),
		dropped:      c("outbox_dropped_total", "Examples dropped or refused by a full outbox."),
		uploaded:     c("uploaded_total", "Examples the broker acknowledged."),
		uploadErrors: c("upload_errors_total", "Failed publish attempts (retried)."),
		confirmed:    c("confirmed_total", "Examples the bridge confirmed durable downstream (deleted from the outbox)."),
		sampled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_agent_sampled_total", Help: "Frames queued for correction, by strategy kind.",
		}, []string{"kind"}),
		infer: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgeloop_agent_infer_seconds", Help: "Inference plus sampling per frame.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		outboxDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeloop_agent_outbox_depth", Help: "Examples waiting in the outbox."}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_agent_model_updates_total", Help: "Model releases, by outcome (applied, refused).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.frames, m.duplicates, m.dropped, m.uploaded, m.uploadErrors, m.confirmed, m.sampled, m.infer, m.outboxDepth, m.updates)
	return m
}
