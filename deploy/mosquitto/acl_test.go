// Package mosquitto_test checks the production Mosquitto ACL (deploy/mosquitto/acl) with
// devices added by add-device.sh, on a real Mosquitto.
package mosquitto_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeloop/edgeloop/internal/servertest"
)

// broker starts a Mosquitto with the ACL and password file in dir, and returns its URL.
func broker(t *testing.T, dir string) string {
	t.Helper()
	servertest.Install(t, "mosquitto") // CI's clean machine has none
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	user, _ := exec.Command("id", "-un").Output()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nuser %s\nallow_anonymous false\npassword_file %s\nacl_file %s\npersistence false\n",
		port, string(user[:len(user)-1]), filepath.Join(dir, "passwd"), filepath.Join(dir, "acl"))
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "tcp://" + addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("mosquitto did not start")
	return ""
}

func client(t *testing.T, url, user, pw string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(user + "-" + strconv.Itoa(os.Getpid())).
		SetUsername(user).SetPassword(pw).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("%s connects: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func addDevice(t *testing.T, dir string, args ...string) error {
	t.Helper()
	cmd := exec.Command("./add-device.sh", args...)
	cmd.Env = append(os.Environ(), "EDGELOOP_MOSQUITTO_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("add-device.sh %v: %w: %s", args, err, out)
	}
	return nil
}

// TestDevicesPublishOnlyIntoTheirProject: a device added for project alpha publishes its
// examples and status under alpha only, reads alpha's release and its own site release
// only, and cannot publish as another device nor a release.
func TestDevicesPublishOnlyIntoTheirProject(t *testing.T) {
	dir := t.TempDir()
	acl, err := os.ReadFile("acl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acl"), acl, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--bridge", "bridge-pw"}, {"alpha", "cam-a", "pw-a"}, {"beta", "cam-b", "pw-b"}} {
		if err := addDevice(t, dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	// Adding again resets the password; a device id belongs to one project.
	if err := addDevice(t, dir, "alpha", "cam-a", "pw-a"); err != nil {
		t.Fatalf("re-adding a device: %v", err)
	}
	if err := addDevice(t, dir, "beta", "cam-a", "pw-x"); err == nil {
		t.Fatal("cam-a of alpha was added to beta too")
	}
	url := broker(t, dir)
	bridge := client(t, url, "bridge", "bridge-pw")
	var mu sync.Mutex
	got := map[string]bool{}
	done := make(chan struct{})
	sub := bridge.Subscribe("edgeloop/v1/+/+/+", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got[m.Topic()] = true
		mu.Unlock()
		if m.Topic() == "edgeloop/v1/alpha/cam-a/status" {
			close(done)
		}
	})
	if !sub.WaitTimeout(5*time.Second) || sub.Error() != nil {
		t.Fatalf("bridge subscribes: %v", sub.Error())
	}
	for _, p := range []string{"alpha", "beta"} {
		if tok := bridge.Publish("edgeloop/v1/"+p+"/release", 1, true, []byte(p)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("bridge publishes the release of %s: %v", p, tok.Error())
		}
	}
	camA := client(t, url, "cam-a", "pw-a")
	// The last one is allowed: messages of one client arrive in order, so once it is
	// in, any of the others that the broker let through would be in too.
	for _, topic := range []string{
		"edgeloop/v1/beta/cam-a/examples",  // another project
		"edgeloop/v1/alpha/cam-b/examples", // another device
		"edgeloop/v1/beta/cam-b/status",
		"edgeloop/v1/alpha/release",       // only the bridge releases
		"edgeloop/v1/alpha/cam-a/release", // its site release too
		"edgeloop/v1/alpha/cam-a/acks",    // and confirms
		"edgeloop/v1/alpha/cam-a/examples",
		"edgeloop/v1/alpha/cam-a/status",
	} {
		if tok := camA.Publish(topic, 1, false, []byte("x")); !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("publish %s: no answer", topic)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("cam-a's own status never reached the bridge")
	}
	mu.Lock()
	for _, topic := range []string{"edgeloop/v1/beta/cam-a/examples", "edgeloop/v1/alpha/cam-b/examples", "edgeloop/v1/beta/cam-b/status",
		"edgeloop/v1/alpha/cam-a/release"} {
		if got[topic] {
			t.Errorf("cam-a (project alpha) published to %s", topic)
		}
	}
	if !got["edgeloop/v1/alpha/cam-a/examples"] {
		t.Error("cam-a's own examples never reached the bridge")
	}
	mu.Unlock()
	// Releases: its project's, not another's.
	releases := make(chan string, 4)
	for _, p := range []string{"beta", "alpha"} {
		camA.Subscribe("edgeloop/v1/"+p+"/release", 1, func(_ paho.Client, m paho.Message) { releases <- string(m.Payload()) }).WaitTimeout(5 * time.Second)
	}
	select {
	case r := <-releases:
		if r != "alpha" {
			t.Fatalf("cam-a read the release of %s", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cam-a never read alpha's retained release")
	}
	select {
	case r := <-releases:
		t.Fatalf("cam-a read a second release: %s", r)
	case <-time.After(500 * time.Millisecond):
	}
	// Site releases: its own, not another device's.
	for _, d := range []string{"cam-z", "cam-a"} {
		if tok := bridge.Publish("edgeloop/v1/alpha/"+d+"/release", 1, true, []byte(d)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("bridge publishes the site release of %s: %v", d, tok.Error())
		}
		camA.Subscribe("edgeloop/v1/alpha/"+d+"/release", 1, func(_ paho.Client, m paho.Message) { releases <- string(m.Payload()) }).WaitTimeout(5 * time.Second)
	}
	select {
	case r := <-releases:
		if r != "cam-a" {
			t.Fatalf("cam-a read the site release of %s", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cam-a never read its retained site release")
	}
	select {
	case r := <-releases:
		t.Fatalf("cam-a read another site release: %s", r)
	case <-time.After(500 * time.Millisecond):
	}
}
