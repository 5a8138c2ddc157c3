package faulttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeloop/edgeloop/pkg/agent"
	"github.com/edgeloop/edgeloop/pkg/modules"
	"github.com/edgeloop/edgeloop/pkg/modules/frontend"
	"github.com/edgeloop/edgeloop/pkg/modules/headless"
	"github.com/edgeloop/edgeloop/pkg/servicemain"
)

// childEnv names the role a re-executed test binary plays: "service" runs the module
// table as the service binaries do (modules.Command, every module linked), "agent" runs
// the edge agent as the edge-agent binary does (agent.Command). The fault suite runs
// every replica and agent as such a process, so that it can kill -9 each.
const childEnv = "EDGELOOP_FAULTTEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "service":
		os.Exit(servicemain.Run("service", os.Args[1:], modules.Command("", modules.Merge(headless.Modules(), frontend.Modules(nil)))))
	case "agent":
		os.Exit(servicemain.Run("edge-agent", os.Args[1:], agent.Command))
	}
	os.Exit(m.Run())
}

// proc is one child process (a service replica or an agent) that the suite kills with
// SIGKILL and starts again with the same arguments, as a supervisor would. A child
// that exits by itself is counted and started again after a second.
type proc struct {
	t    *testing.T
	name string
	role string
	args []string
	logs *os.File

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	killed  bool
	stopped bool
	// exits counts the times it exited without being killed or stopped.
	exits int
}

func newProc(t *testing.T, dir, name, role string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(dir + "/" + name + ".log")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, role: role, args: args, logs: f}
	t.Cleanup(func() {
		p.stop()
		_ = f.Close()
		if t.Failed() {
			t.Logf("--- last lines of %s's log:\n%s", name, tail(f.Name(), 25))
		}
	})
	return p
}

// childEnviron is the test's environment without EDGELOOP_* variables (the children get
// their settings as flags) and with the child's role.
func childEnviron(role string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EDGELOOP_") {
			env = append(env, kv)
		}
	}
	return append(env, childEnv+"="+role)
}

// start starts the process; it is started again whenever it exits by itself.
func (p *proc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked()
}

func (p *proc) startLocked() {
	cmd := exec.Command(os.Args[0], p.args...)
	cmd.Env = childEnviron(p.role)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	fmt.Fprintf(p.logs, "=== %s start\n", time.Now().Format("15:04:05.000"))
	if err := cmd.Start(); err != nil {
		p.t.Errorf("%s: start: %v", p.name, err)
		return
	}
	done := make(chan struct{})
	p.cmd, p.done, p.killed = cmd, done, false
	go func() {
		err := cmd.Wait()
		close(done)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cmd != cmd || p.killed || p.stopped {
			return
		}
		p.exits++
		fmt.Fprintf(p.logs, "=== %s exited by itself: %v; starting again in 1s\n", time.Now().Format("15:04:05.000"), err)
		p.cmd = nil
		time.AfterFunc(time.Second, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.cmd == nil && !p.stopped {
				p.startLocked()
			}
		})
	}()
}

// kill ends the process with SIGKILL, as a crash or a power cut would, and waits for it.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.killed = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	fmt.Fprintf(p.logs, "=== %s kill -9\n", time.Now().Format("15:04:05.000"))
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop ends it with SIGTERM (SIGKILL after 20 s) for good.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.stopped = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// unexpectedExits is how often it exited without being killed.
func (p *proc) unexpectedExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exits
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr is a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// failover is a reverse proxy in front of the curator replicas, as a load balancer
// would be: a request goes to the first replica that accepts the connection. Only
// refused connections move on to the next replica (the request never reached one);
// any other failure is the client's to retry.
type failover struct {
	backends []string
	client   *http.Client
}

func (f *failover) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var last error
	for _, b := range f.backends {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+b+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := f.client.Do(req)
		if err != nil {
			last = err
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			break
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, fmt.Sprintf("no curator replica answered: %v", last), http.StatusBadGateway)
}
