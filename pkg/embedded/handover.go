package embedded

import (
	"bytes"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// handoverHook closes a message-loss race of mochi-mqtt v2.7.9. When a client reconnects
// to its persistent session, the server copies the old connection's in-flight window to
// the new one, then clears the old one; a QoS 1 message routed to the old connection in
// between, or just after, is dropped. This hook keeps those messages and delivers them
// on the new connection. Messages already copied are recognised and not sent twice.
type handoverHook struct {
	mqtt.HookBase
	srv *mqtt.Server

	mu      sync.Mutex
	old     map[string]*mqtt.Client // client id -> the connection being taken over
	dropped map[string][]packets.Packet
}

func newHandoverHook(srv *mqtt.Server) *handoverHook {
	return &handoverHook{srv: srv, old: map[string]*mqtt.Client{}, dropped: map[string][]packets.Packet{}}
}

// ID implements mqtt.Hook.
func (h *handoverHook) ID() string { return "session-handover" }

// Provides implements mqtt.Hook.
func (h *handoverHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnQosDropped || b == mqtt.OnSessionEstablished
}

// OnConnect remembers the connection a persistent session is about to leave.
func (h *handoverHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.Connect.Clean {
		return nil
	}
	if old, ok := h.srv.Clients.Get(cl.ID); ok && old != cl {
		h.mu.Lock()
		h.old[cl.ID] = old
		h.mu.Unlock()
	}
	return nil
}

// OnQosDropped keeps messages cleared from a connection that is being taken over.
func (h *handoverHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.old[cl.ID] == cl {
		h.dropped[cl.ID] = append(h.dropped[cl.ID], pk)
	}
}

// OnSessionEstablished delivers on the new connection what the old one dropped or still
// holds, now and once more shortly after, for messages routed while the handover ran.
func (h *handoverHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.mu.Lock()
	old := h.old[cl.ID]
	dropped := h.dropped[cl.ID]
	delete(h.dropped, cl.ID)
	h.mu.Unlock()
	if old == nil {
		return
	}
	h.deliver(cl, dropped)
	h.sweep(old, cl)
	time.AfterFunc(250*time.Millisecond, func() {
		h.sweep(old, cl)
		h.mu.Lock()
		if h.old[cl.ID] == old {
			delete(h.old, cl.ID)
		}
		h.mu.Unlock()
	})
}

// sweep moves what is still in the old connection's in-flight window to the new one.
func (h *handoverHook) sweep(old, cl *mqtt.Client) {
	var moved []packets.Packet
	for _, pk := range old.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish && old.State.Inflight.Delete(pk.PacketID) {
			moved = append(moved, pk)
		}
	}
	h.deliver(cl, moved)
}

func (h *handoverHook) deliver(cl *mqtt.Client, pks []packets.Packet) {
	for _, pk := range pks {
		if cur, ok := cl.State.Inflight.Get(pk.PacketID); ok && cur.TopicName == pk.TopicName && bytes.Equal(cur.Payload, pk.Payload) {
			continue // copied by the server already
		}
		id, err := cl.NextPacketID()
		if err != nil {
			h.Log.Warn("session handover: no packet id left", "client", cl.ID)
			return
		}
		out := pk.Copy(false)
		out.PacketID = uint16(id)
		out.Created = pk.Created
		out.Expiry = pk.Expiry
		cl.State.Inflight.Set(out)
		// A write error leaves it in flight: it is resent when the client reconnects.
		_ = cl.WritePacket(out)
	}
}
