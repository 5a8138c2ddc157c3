package bridge

import (
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// releaseFilter matches every project's retained release, siteReleaseFilter every
// device's retained site release.
const (
	releaseFilter     = "edgeloop/v1/+/release"
	siteReleaseFilter = "edgeloop/v1/+/+/release"
)

// releaseTopic is where rel is retained: its project's release topic, or its device's
// for a site release.
func releaseTopic(rel *edgeloopv1.ModelRelease) string {
	if rel.GetSite() != "" {
		return contract.SiteReleaseTopic(rel.GetProject(), rel.GetSite())
	}
	return contract.ReleaseTopic(rel.GetProject())
}

// releaseClock keeps, per release topic (a project's, or a device's site release), the release time (ModelRelease.released_at, set by the
// registry when its compare-and-swap moved the release) of the newest release the
// retained topic holds, so that the retained release never goes backwards: two releases
// set at once may reach Kafka in the other order, and a rollback is a newer release of
// an older version, so the order is the registry's release time, not the version. It
// learns the retained release at start-up from the broker (the bridge subscribes to it),
// so a restart or a rebalance does not forget it.
type releaseClock struct {
	mu     sync.Mutex
	newest map[string]time.Time
}

// stale reports whether rel is older than the newest release of its topic. A release
// without a time (an older producer) is never stale.
func (c *releaseClock) stale(rel *edgeloopv1.ModelRelease) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rel.GetReleasedAt() == nil {
		return false
	}
	return rel.GetReleasedAt().AsTime().Before(c.newest[releaseTopic(rel)])
}

// saw records rel as published (or found retained).
func (c *releaseClock) saw(rel *edgeloopv1.ModelRelease) {
	if rel.GetReleasedAt() == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.newest == nil {
		c.newest = map[string]time.Time{}
	}
	if t := rel.GetReleasedAt().AsTime(); t.After(c.newest[releaseTopic(rel)]) {
		c.newest[releaseTopic(rel)] = t
	}
}

// retained is the handler of the retained releases the broker sends.
func (c *releaseClock) retained(m mqttbus.Message) {
	defer m.Ack()
	rel := &edgeloopv1.ModelRelease{}
	if len(m.Payload()) == 0 || proto.Unmarshal(m.Payload(), rel) != nil {
		return
	}
	if releaseTopic(rel) == m.Topic() {
		c.saw(rel)
	}
}
