package project

import (
	"time"

	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/vision"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// Label is one annotated label: a class, and a box for detection (normalised).
type Label struct {
	Class string `json:"class"`
	Box   *Box   `json:"box,omitempty"`
}

// Box is a normalised box: nn.Box, whose class index stored records leave out (a
// Label names its class).
type Box = nn.Box

// Prediction is what the model said at the edge.
type Prediction struct {
	Class      string  `json:"class"`
	Confidence float32 `json:"confidence"`
	Box        *Box    `json:"box,omitempty"`
}

// Reason is why the edge sampled an example.
type Reason struct {
	Kind     string  `json:"kind"`
	Strategy string  `json:"strategy"`
	Score    float32 `json:"score"`
	Detail   string  `json:"detail"`
}

// ExampleRecord is an ingested example.
type ExampleRecord struct {
	ID          string    `json:"id"`
	Project     string    `json:"project"`
	Device      string    `json:"device"`
	CapturedAt  time.Time `json:"captured_at"`
	ReceivedAt  time.Time `json:"received_at"`
	Image       string    `json:"image"` // object key
	ContentType string    `json:"content_type"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	// Channels of the image: 1 grey, 3 colour (0: not recorded, before colour).
	Channels     int          `json:"channels,omitempty"`
	ModelVersion int64        `json:"model_version"`
	Predictions  []Prediction `json:"predictions"`
	Reasons      []Reason     `json:"reasons"`
	// TakenBy is the kind of the sampling strategy that took the example (one of
	// Reasons' kinds); batches are balanced on it.
	TakenBy string `json:"taken_by,omitempty"`
	// Correction is the operator's, when an operator flagged the example.
	Correction []Label `json:"correction,omitempty"`
	// Truth is the simulator's ground truth; never shown to annotators.
	Truth []Label `json:"truth,omitempty"`
	// DuplicateOf names an earlier example that looks the same; duplicates are not
	// queued.
	DuplicateOf string `json:"duplicate_of,omitempty"`
	FrameID     string `json:"frame_id,omitempty"`
	// Embedding is the model's embedding of the frame as the agent sent it, reduced
	// (selection.Reduce to PendingEmbedding floats); empty when it sent none.
	Embedding []float32 `json:"embedding,omitempty"`
}

// TopConfidence is the most confident prediction's confidence (0 when none).
func (e *ExampleRecord) TopConfidence() float32 {
	var c float32
	for _, p := range e.Predictions {
		c = max(c, p.Confidence)
	}
	return c
}

// TopClass is the predicted class of the most confident prediction ("" when none).
func (e *ExampleRecord) TopClass() string {
	best, c := "", float32(-1)
	for _, p := range e.Predictions {
		if p.Confidence > c {
			best, c = p.Class, p.Confidence
		}
	}
	return best
}

// FrameRecord says which example holds a frame: a later example of the same frame (an
// operator's correction, a second sampling) joins that one instead of being queued again.
type FrameRecord struct {
	Example string `json:"example"`
}

// Pending is an example waiting in the open batch.
type Pending struct {
	ID     string `json:"id"`
	Class  string `json:"class"`
	Reason string `json:"reason"`
	// Reasons are the kinds of every sampling reason (Reason is the first).
	Reasons    []string  `json:"reasons,omitempty"`
	Confidence float32   `json:"confidence"`
	At         time.Time `json:"at"`
	// Device sent it (a site, for cold starts).
	Device string `json:"device,omitempty"`
	// Probs are the model's probabilities in the project's class order (projects of
	// up to MaxPendingClasses classes) and Embedding the model's embedding of the frame,
	// reduced to at most PendingEmbedding floats (selection.Reduce): what pool-based
	// selection weighs. Both are empty for examples without them.
	Probs     []float32 `json:"probs,omitempty"`
	Embedding []float32 `json:"embedding,omitempty"`
}

// The sizes of what a waiting candidate keeps for selection in the ledger, which is
// rewritten on every example.
const (
	MaxPendingClasses = 64
	PendingEmbedding  = 128
)

// Ledger is a project's open batch and the recent history that makes ingestion
// idempotent. It changes only by compare-and-swap.
type Ledger struct {
	Seq     int       `json:"seq"`
	Pending []Pending `json:"pending"`
	// Recent are the ids of the last examples queued: a redelivery changes nothing.
	Recent []string `json:"recent"`
	// Formed are batches cut from Pending whose batch object may not be written yet
	// (a crash in between is repaired from here).
	Formed []FormedBatch `json:"formed,omitempty"`
	Rev    int           `json:"rev"`
	// LastFormed is when the last batch formed (MaxWait counts from it too, so that
	// candidates left waiting do not close every batch early).
	LastFormed time.Time `json:"last_formed,omitempty"`
	// Expired counts the candidates that waited longer than the TTL without being
	// picked; Sites counts the examples batched per device (cold starts).
	Expired int            `json:"expired,omitempty"`
	Sites   map[string]int `json:"sites,omitempty"`
}

// FormedBatch is a batch cut from the open batch.
type FormedBatch struct {
	ID       string    `json:"id"`
	Examples []Pending `json:"examples"`
	At       time.Time `json:"at"`
}

// Batch states.
const (
	StateOpen       = "open"
	StateReady      = "ready"
	StateInProgress = "in_progress"
	StateSubmitted  = "submitted"
	StateApproving  = "approving"
	StateApproved   = "approved"
)

// Batch is a correction batch.
type Batch struct {
	ID        string    `json:"id"`
	Project   string    `json:"project"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	Items     []Item    `json:"items"`
	Claim     *Claim    `json:"claim,omitempty"`
	// Comments are the reviewer's, when the batch was rejected or returned.
	Comments string `json:"comments,omitempty"`
	// ReturnTo is where the items a reviewer rejected go at approval: ReturnToAnnotator
	// or ReturnToQueue; ReturnedTo is the batch that holds them, ReturnedFrom the batch
	// a returned batch came from.
	ReturnTo     string       `json:"return_to,omitempty"`
	ReturnedTo   string       `json:"returned_to,omitempty"`
	ReturnedFrom string       `json:"returned_from,omitempty"`
	ApprovedAt   *time.Time   `json:"approved_at,omitempty"`
	Snapshot     string       `json:"dataset_snapshot,omitempty"`
	Audit        []AuditEntry `json:"audit"`
	Rev          int          `json:"rev"`
}

// Item is one example of a batch and its annotation.
type Item struct {
	ExampleID string `json:"example_id"`
	Class     string `json:"class"` // predicted, for filters
	Reason    string `json:"reason"`
	// Reasons are the kinds of every sampling reason (Reason is the first).
	Reasons    []string  `json:"reasons,omitempty"`
	Confidence float32   `json:"confidence"`
	ArrivedAt  time.Time `json:"arrived_at"`
	// Labels are the annotation; nil until saved.
	Labels []Label `json:"labels"`
	// Status is "" (to do), "done" or "skipped" (unusable).
	Status      string     `json:"status,omitempty"`
	AnnotatedBy string     `json:"annotated_by,omitempty"`
	AnnotatedAt *time.Time `json:"annotated_at,omitempty"`
	// Split is the split an import's archive pinned the example to; empty: the split
	// rule decides at approval.
	Split string `json:"split,omitempty"`
	// Review is the reviewer's verdict on the item while its batch is submitted.
	Review *ItemReview `json:"review,omitempty"`
	// Feedback is the review that sent the item back to be corrected again.
	Feedback *ItemReview `json:"feedback,omitempty"`
}

// Item review verdicts and where rejected items go at approval.
const (
	VerdictAccepted   = "accepted"
	VerdictRejected   = "rejected"
	ReturnToAnnotator = "annotator"
	ReturnToQueue     = "queue"
)

// ItemReview is a reviewer's verdict on one item.
type ItemReview struct {
	Verdict string    `json:"verdict"`
	Comment string    `json:"comment,omitempty"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}

// Rejected reports whether a reviewer rejected the item.
func (it *Item) Rejected() bool { return it.Review != nil && it.Review.Verdict == VerdictRejected }

// ReasonKinds are the kinds of every sampling reason of the item.
func (it *Item) ReasonKinds() []string {
	if len(it.Reasons) > 0 {
		return it.Reasons
	}
	if it.Reason != "" {
		return []string{it.Reason}
	}
	return nil
}

// Claim is an annotator's lease on a batch.
type Claim struct {
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
}

// AuditEntry records a transition: who, when, what.
type AuditEntry struct {
	At     time.Time `json:"at"`
	User   string    `json:"user"`
	Action string    `json:"action"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// DatasetEntry is an approved example pinned to its split.
type DatasetEntry struct {
	ID     string  `json:"id"`
	Split  string  `json:"split"`
	Labels []Label `json:"labels"`
	Image  string  `json:"image"`
	Batch  string  `json:"batch"`
	// Seq is the dataset snapshot that added it.
	Seq int `json:"seq"`
}

// Dataset is a project's manifest of approved examples. It only grows, and an
// example's split never changes.
type Dataset struct {
	Seq     int            `json:"seq"`
	Entries []DatasetEntry `json:"entries"`
	// Batches are the batch ids already added (approval is idempotent).
	Batches []string `json:"batches"`
	Rev     int      `json:"rev"`
}

// Counts returns the examples per split and per class (class counts by label).
func (d *Dataset) Counts() (bySplit map[string]int, byClass map[string]int) {
	bySplit, byClass = map[string]int{"train": 0, "val": 0, "test": 0}, map[string]int{}
	for _, e := range d.Entries {
		bySplit[e.Split]++
		for _, l := range e.Labels {
			byClass[l.Class]++
		}
	}
	return bySplit, byClass
}

// LabelsFromProto converts a wire annotation to stored labels.
func LabelsFromProto(a *edgeloopv1.Annotation) []Label {
	if a == nil {
		return nil
	}
	out := make([]Label, 0, len(a.Labels))
	for _, l := range a.Labels {
		out = append(out, Label{Class: l.ClassName, Box: vision.BoxFromProto(l.Box)})
	}
	return out
}

// DatasetView is what the API shows of a dataset: its snapshot and counts.
type DatasetView struct {
	Snapshot string         `json:"snapshot"`
	Total    int            `json:"total"`
	BySplit  map[string]int `json:"by_split"`
	ByClass  map[string]int `json:"by_class"`
	Batches  int            `json:"batches"`
}

// PseudoEntry is a frame an agent was sure of, sent with its prediction (sampling kind
// confident): a pseudo-label. It is never annotated and never in a batch, val or test;
// retrain fine-tunes on those at or above the project's pseudo_min_confidence, weighted.
type PseudoEntry struct {
	ID         string    `json:"id"`
	Image      string    `json:"image"`
	Class      string    `json:"class"`
	Confidence float32   `json:"confidence"`
	Device     string    `json:"device,omitempty"`
	Model      int64     `json:"model_version"`
	At         time.Time `json:"at"`
}

// MaxPseudo is how many pseudo-labels a project keeps, the newest.
const MaxPseudo = 2000

// PseudoSet is a project's pseudo-labels, oldest first, at most MaxPseudo.
type PseudoSet struct {
	Entries []PseudoEntry `json:"entries"`
	// Received counts every pseudo-label ever added (the oldest leave at MaxPseudo).
	Received int `json:"received"`
	Rev      int `json:"rev"`
}

// Add appends the entries not already in the set (by id) and drops the oldest beyond
// MaxPseudo; it reports how many it added.
func (ps *PseudoSet) Add(es ...PseudoEntry) int {
	have := make(map[string]bool, len(ps.Entries))
	for _, e := range ps.Entries {
		have[e.ID] = true
	}
	n := 0
	for _, e := range es {
		if !have[e.ID] {
			have[e.ID] = true
			ps.Entries = append(ps.Entries, e)
			n++
		}
	}
	if over := len(ps.Entries) - MaxPseudo; over > 0 {
		ps.Entries = append(ps.Entries[:0:0], ps.Entries[over:]...)
	}
	ps.Received += n
	return n
}
