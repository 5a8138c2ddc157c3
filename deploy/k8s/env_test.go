// Package k8s holds no code: its test checks that the Kubernetes manifests in this
// directory set the services' flags by the EDGELOOP_* names the services read, with
// values they accept. The schema validation of the manifests is deploy/k8s/validate's.
package k8s

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/edgeloop/edgeloop/pkg/config"
	"github.com/edgeloop/edgeloop/pkg/logging"
	"github.com/edgeloop/edgeloop/pkg/modules"
)

// serviceFlags builds each container's flag set as its main does: the module table's
// flags with the binary's default target (servicemain adds the logging flags).
var serviceFlags = map[string]func(fs *flag.FlagSet){
	"bridge":  func(fs *flag.FlagSet) { modules.RegisterFlags(fs, modules.Bridge) },
	"curator": func(fs *flag.FlagSet) { modules.RegisterFlags(fs, modules.Curator) },
	"retrain": func(fs *flag.FlagSet) { modules.RegisterFlags(fs, modules.Retrain) }, // `retrain serve`
}

func flagSet(t *testing.T, container string) *flag.FlagSet {
	t.Helper()
	register, ok := serviceFlags[container]
	if !ok {
		t.Fatalf("container %q is no edgeloop service", container)
	}
	fs := flag.NewFlagSet(container, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var lo logging.Options
	lo.Register(fs)
	register(fs)
	return fs
}

// envNames maps each EDGELOOP_* name fs reads to its flag.
func envNames(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[config.EnvName(f.Name)] = f.Name })
	return m
}

// readEnvFile reads a configMapGenerator env file: KEY=VALUE lines, # comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is no KEY=VALUE", path, line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}

type envVar struct {
	Name      string
	Value     *string
	ValueFrom any `yaml:"valueFrom"`
}

type container struct {
	Name    string
	Env     []envVar
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
	} `yaml:"envFrom"`
}

// containers reads every container of every workload (or workload patch) in path.
func containers(t *testing.T, path string) []container {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []container
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Spec struct {
				Template struct {
					Spec struct{ Containers []container }
				}
			}
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, doc.Spec.Template.Spec.Containers...)
	}
	return out
}

// TestManifestEnvMatchesFlags: every EDGELOOP_* variable the manifests give a container
// is a flag of that service, each variable of the shared ConfigMap is a flag of some
// service that reads it, and the values written in the manifests parse (a "yes" for a
// boolean flag would stop the service at start).
func TestManifestEnvMatchesFlags(t *testing.T) {
	shared := readEnvFile(t, filepath.Join("base", "config.env"))
	files, err := filepath.Glob(filepath.Join("base", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	overlays, _ := filepath.Glob(filepath.Join("overlays", "*", "*.yaml"))
	files = append(files, overlays...)
	usedShared := map[string]bool{}
	seen := map[string]bool{}
	for _, path := range files {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		for _, c := range containers(t, path) {
			seen[c.Name] = true
			fs := flagSet(t, c.Name)
			names := envNames(fs)
			values := map[string]string{}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == "edgeloop-config" {
					for k, v := range shared {
						if _, ok := names[k]; ok {
							usedShared[k] = true
							values[k] = v
						}
					}
				}
			}
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "EDGELOOP_") {
					continue
				}
				if _, ok := names[e.Name]; !ok {
					t.Errorf("%s: container %s sets %s, which is no flag of %s (-h lists them)", path, c.Name, e.Name, c.Name)
				}
				if e.Value != nil {
					values[e.Name] = *e.Value
				}
			}
			lookup := func(k string) (string, bool) { v, ok := values[k]; return v, ok }
			if err := config.Parse(fs, nil, lookup); err != nil {
				t.Errorf("%s: container %s would not start: %v", path, c.Name, err)
			}
		}
	}
	for _, want := range []string{"bridge", "curator", "retrain"} {
		if !seen[want] {
			t.Errorf("no %s container in the manifests", want)
		}
	}
	var unused []string
	for k := range shared {
		if !usedShared[k] {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("base/config.env sets %s, which no service that reads it has as a flag", strings.Join(unused, ", "))
	}
}
