package curator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	ingested, duplicates, joined, annotations, redelivered, expired, pseudo *prometheus.CounterVec
	batches                                                                 *prometheus.GaugeVec
	toApproval                                                              prometheus.Histogram
}

// NewMetrics registers the curator's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_curator_examples_ingested_total", Help: "Examples stored and queued, by project."}, []string{"project"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_curator_duplicates_total", Help: "Near-duplicate examples recorded and not queued, by project."}, []string{"project"}),
		pseudo: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_curator_pseudo_labels_total", Help: "Pseudo-labels (agents' confident frames) stored apart from batches, by project."}, []string{"project"}),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_curator_redeliveries_total", Help: "Examples received again (by id) and ignored, by project."}, []string{"project"}),
		joined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_curator_frame_joins_total", Help: "Examples joined onto the earlier example of their frame (an operator's correction, a second sampling), by project."}, []string{"project"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_curator_candidates_expired_total", Help: "Candidates not picked for a batch within the project's batch TTL, by project."}, []string{"project"}),
		annotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgeloop_curator_annotations_total", Help: "Annotations saved (rate: annotations per hour), by project."}, []string{"project"}),
		batches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "edgeloop_curator_batches", Help: "Batches by project and state."}, []string{"project", "state"}),
		toApproval: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgeloop_curator_arrival_to_approval_seconds", Help: "Time from an example's arrival to its batch's approval.",
			Buckets: prometheus.ExponentialBuckets(10, 2, 16)}),
	}
	reg.MustRegister(m.ingested, m.duplicates, m.joined, m.redelivered, m.annotations, m.expired, m.pseudo, m.batches, m.toApproval)
	return m
}
