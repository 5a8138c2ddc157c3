package embedded

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"go.etcd.io/bbolt"
)

// repairInflight restores the packet ids of the in-flight messages that mochi-mqtt
// v2.7.9's bolt hook stored without them (it keys each record "IFM_<client>:<id>" but
// leaves the id out of the value, and stores a will message's delivery with id 0).
// Restored as they are, those messages have packet id 0, which mochi refuses to resend
// ("missing packet id") and disconnects the client for, again on every reconnect. The
// id comes back from the key, or, when the key has none, is a free one of the client's.
// It runs on the closed database before the broker opens it.
func repairInflight(path string) (int, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return 0, fmt.Errorf("embedded mqtt storage %s: %w", path, err)
	}
	defer db.Close()
	fixed := 0
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("mochi"))
		if b == nil {
			return nil
		}
		prefix := []byte(storage.InflightKey + "_")
		type rec struct {
			key    []byte
			client string
			id     uint64
			m      storage.Message
		}
		var broken []rec
		used := map[string]map[uint64]bool{}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			i := bytes.LastIndexByte(k, ':')
			if i < 0 {
				continue
			}
			id, _ := strconv.ParseUint(string(k[i+1:]), 10, 16)
			client := string(k[len(prefix):i])
			if used[client] == nil {
				used[client] = map[uint64]bool{}
			}
			used[client][id] = true
			var m storage.Message
			if err := m.UnmarshalBinary(v); err != nil || m.PacketID != 0 {
				continue
			}
			broken = append(broken, rec{key: append([]byte(nil), k...), client: client, id: id, m: m})
		}
		for _, r := range broken {
			id := r.id
			for next := uint64(1); id == 0 && next <= 65535; next++ {
				if !used[r.client][next] {
					id = next
					used[r.client][id] = true
				}
			}
			if id == 0 {
				continue // no free id: leave it to mochi
			}
			r.m.PacketID = uint16(id)
			key := fmt.Sprintf("%s_%s:%d", storage.InflightKey, r.client, id)
			r.m.ID = key
			v, err := r.m.MarshalBinary()
			if err != nil {
				return err
			}
			if key != string(r.key) {
				if err := b.Delete(r.key); err != nil {
					return err
				}
			}
			if err := b.Put([]byte(key), v); err != nil {
				return err
			}
			fixed++
		}
		return nil
	})
	return fixed, err
}
