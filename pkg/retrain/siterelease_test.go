package retrain_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/edgeloop/edgeloop/internal/servertest"
	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/artifact"
	"github.com/edgeloop/edgeloop/pkg/bridge"
	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/datasets"
	"github.com/edgeloop/edgeloop/pkg/kafkabus"
	"github.com/edgeloop/edgeloop/pkg/mqttbus"
	"github.com/edgeloop/edgeloop/pkg/nn"
	"github.com/edgeloop/edgeloop/pkg/registry"
	edgeloopv1 "github.com/edgeloop/edgeloop/schemas/edgeloop/v1"
)

// TestSiteReleaseReachesOneDevice, on real Kafka, MinIO and Mosquitto, through the
// bridge and the curator's registry API: two agents run the project release v1; cam-1's
// site release v2 reaches cam-1 only; a site release replayed onto cam-2's topic (signed,
// but addressed to cam-1) and one signed by an unknown key are refused by cam-2, which
// stays on v1; a newer project release v3 reaches both, cam-1 leaving its site release;
// cam-1's next site release v4 (adapted from v3) reaches it, and its revocation through
// the API takes it back to v3. The API's release lists the site release with its
// site, in the history too.
func TestSiteReleaseReachesOneDevice(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The retrain service creates the release topic; this test runs none.
	if err := kafkabus.EnsureTopics(ctx, e.kafka, 3, e.kafka.Topic(contract.TopicModels)); err != nil {
		t.Fatal(err)
	}
	p := "sites-" + strings.ToLower(servertest.RandomID(6))
	reg := registry.New(e.store, e.prod, e.kafka, e.api)
	reg.Key = e.key
	put := func(v, parent int64, site string) {
		t.Helper()
		a := nn.ClassifierArch(10)
		params, err := nn.InitParams(a, uint64(v))
		if err != nil {
			t.Fatal(err)
		}
		b, err := artifact.Encode(&artifact.Model{Header: artifact.Header{Arch: a, Classes: datasets.Classes(), Project: p, Version: v}, Params: params})
		if err != nil {
			t.Fatal(err)
		}
		ver := &registry.Version{Project: p, Version: v, Parent: parent, Site: site, Task: "classify", Classes: datasets.Classes(),
			Decision: registry.Decision{Published: true, Verdict: "published"}}
		if err := reg.Put(ctx, ver, b, nil, nil, e.key, registry.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	put(1, 0, "")
	if _, err := reg.SetRelease(ctx, p, 1, "bootstrap", "test", false); err != nil {
		t.Fatal(err)
	}

	mq := servertest.MQTT(t)
	share := "b-" + strings.ToLower(servertest.RandomID(6))
	go func() {
		_ = bridge.RunService(ctx, bridge.ServiceConfig{Kafka: e.kafka, OpsAddr: "127.0.0.1:0", Partitions: 3,
			MQTT: mqttbus.Config{URL: mq, ClientID: "bridge-" + share}, Options: bridge.Options{ShareGroup: share, ReleaseGroup: "rel-" + share}}, e.log)
	}()
	pub := e.key.Public().(ed25519.PublicKey)
	agents := map[string]*agent.Agent{}
	for _, dev := range []string{"cam-1", "cam-2"} {
		a, err := agent.New(agent.Config{Project: p, Device: dev, DataDir: t.TempDir(), MQTT: mqttbus.Config{URL: mq},
			PublicKeys: map[string]ed25519.PublicKey{artifact.KeyID(pub): pub}, DeviceToken: "device-token-0001", RegistryURL: e.api}, nil, e.log)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = a.Run(ctx) }()
		agents[dev] = a
	}
	cam1, cam2 := agents["cam-1"], agents["cam-2"]
	on := func(what string, a *agent.Agent, v int64) {
		t.Helper()
		e.waitFor(what, 60*time.Second, func() bool { return a.ModelVersion() == v })
	}
	on("cam-1 on v1", cam1, 1)
	on("cam-2 on v1", cam2, 1)

	// cam-1's site release v2, adapted from v1.
	put(2, 1, "cam-1")
	if _, err := reg.SetRelease(ctx, p, 2, "promote", "test", false); err == nil {
		t.Fatal("a site's version became the project release")
	}
	site, err := reg.SetSiteRelease(ctx, p, "cam-1", 2, "site", "test")
	if err != nil {
		t.Fatal(err)
	}
	on("cam-1 on its site release v2", cam1, 2)

	// Forged site releases on cam-2's own topic: cam-1's (signed, for another device),
	// and one for cam-2 signed by an unknown key.
	mc, err := mqttbus.Connect(ctx, mqttbus.Config{URL: mq, ClientID: "forger-" + share}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect(time.Second)
	replayed, _ := proto.Marshal(&edgeloopv1.ModelRelease{Project: p, Version: 2, Site: "cam-2", ArtifactUrl: reg.ArtifactURL(p, 2),
		Manifest: site.Manifest, ManifestSignature: site.ManifestSig, ManifestKeyId: site.ManifestKeyID})
	_, other, _ := artifact.GenerateKey()
	fm, fs, err := artifact.SignManifest(other, &artifact.ReleaseManifest{Project: p, Version: 2, SHA256: site.SHA256, Seq: 99, Site: "cam-2",
		BaseVersion: 1, BaseSeq: 1, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	unknown, _ := proto.Marshal(&edgeloopv1.ModelRelease{Project: p, Version: 2, Site: "cam-2", Manifest: fm, ManifestSignature: fs,
		ManifestKeyId: artifact.KeyID(other.Public().(ed25519.PublicKey))})
	for _, c := range []struct {
		payload []byte
		want    string
	}{{replayed, "another device"}, {unknown, "unknown key"}} {
		if err := mc.Publish(ctx, contract.SiteReleaseTopic(p, "cam-2"), 1, true, c.payload); err != nil {
			t.Fatal(err)
		}
		e.waitFor("cam-2 to refuse a forged site release", 30*time.Second, func() bool {
			return strings.Contains(cam2.Status().GetLastRefusedUpdate(), c.want)
		})
		if cam2.ModelVersion() != 1 || cam1.ModelVersion() != 2 {
			t.Fatalf("after a forged site release: cam-1 on v%d, cam-2 on v%d; want 2 and 1", cam1.ModelVersion(), cam2.ModelVersion())
		}
	}
	_ = mc.Publish(ctx, contract.SiteReleaseTopic(p, "cam-2"), 1, true, nil) // clear the retained forgery

	// A newer project release reaches both: cam-1 leaves its site release.
	put(3, 1, "")
	if _, err := reg.SetRelease(ctx, p, 3, "retrain", "test", false); err != nil {
		t.Fatal(err)
	}
	on("cam-2 on the project release v3", cam2, 3)
	on("cam-1 back on the project release v3", cam1, 3)
	if sr, _ := reg.SiteRelease(ctx, p, "cam-1"); registry.SiteStatus(sr, mustCurrent(t, reg, p)) != registry.SiteSuperseded {
		t.Fatalf("cam-1's site release after v3: %q, want superseded", registry.SiteStatus(sr, mustCurrent(t, reg, p)))
	}
	// A site version adapted from v1 can no longer be released; one from v3 can.
	put(4, 1, "cam-1")
	if _, err := reg.SetSiteRelease(ctx, p, "cam-1", 4, "site", "test"); err == nil || !strings.Contains(err.Error(), "adapt the site again") {
		t.Fatalf("a site release from an old project release: %v", err)
	}
	put(5, 3, "cam-1")
	if _, err := reg.SetSiteRelease(ctx, p, "cam-1", 5, "site", "test"); err != nil {
		t.Fatal(err)
	}
	on("cam-1 on its site release v5", cam1, 5)

	// The API lists it with its site; an admin revokes it and cam-1 returns to v3.
	var o struct {
		Version int64                    `json:"version"`
		History []registry.ReleaseChange `json:"history"`
		Sites   []struct {
			Site    string `json:"site"`
			Version int64  `json:"version"`
			Status  string `json:"status"`
		} `json:"sites"`
	}
	getJSON(t, e.api+"/api/v1/projects/"+p+"/release", &o)
	if o.Version != 3 || len(o.Sites) != 1 || o.Sites[0].Site != "cam-1" || o.Sites[0].Version != 5 || o.Sites[0].Status != registry.SiteActive {
		t.Fatalf("release overview %+v: want project v3 and cam-1's active site release v5", o)
	}
	if h := o.History; len(h) != 4 || h[1].Site != "cam-1" || h[1].Version != 2 || h[3].Site != "cam-1" || h[3].Version != 5 || h[2].Site != "" {
		t.Fatalf("release history %+v: want v1, cam-1's v2, v3, cam-1's v5", h)
	}
	req := mustReq(e.api+"/api/v1/projects/"+p+"/sites/cam-1/revoke", "admin-token-00001")
	req.Method = http.MethodPost
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", res.StatusCode)
	}
	on("cam-1 back on v3 after the revocation", cam1, 3)
	if cam2.ModelVersion() != 3 {
		t.Fatalf("cam-2 on v%d, want v3", cam2.ModelVersion())
	}
}

func mustCurrent(t *testing.T, reg *registry.Registry, p string) *registry.Release {
	t.Helper()
	rel, err := reg.Current(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
