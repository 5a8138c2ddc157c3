package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// schemas returns the schemas of DefaultKubeVersions: from EDGELOOP_K8S_SCHEMAS, else
// from the project's installer (which downloads them once into the cache).
func schemas(t *testing.T) []*Schemas {
	t.Helper()
	root := os.Getenv("EDGELOOP_K8S_SCHEMAS")
	if root == "" {
		out, err := exec.Command("../../local/k8s-schemas.sh", "install").Output()
		if err != nil {
			t.Fatalf("deploy/local/k8s-schemas.sh install: %v", err)
		}
		root = strings.TrimSpace(string(out))
	}
	v, err := LoadVersions(root, DefaultKubeVersions)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOverlays: the overlays a user applies render and every object is valid for each
// Kubernetes version, and they hold what the README promises.
func TestOverlays(t *testing.T) {
	versions := schemas(t)
	for _, overlay := range []string{"cpu", "gpu"} {
		t.Run(overlay, func(t *testing.T) {
			dir := filepath.Join("..", "overlays", overlay)
			objs, err := Check(dir, versions)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]Object{}
			for _, o := range objs {
				byName[o.Kind+"/"+o.Name] = o
				t.Logf("valid: %s", o)
			}
			for _, want := range []string{"Namespace/edgeloop", "StatefulSet/bridge", "Service/bridge",
				"PodDisruptionBudget/bridge", "Deployment/curator", "Service/curator", "Deployment/retrain"} {
				if _, ok := byName[want]; !ok {
					t.Errorf("%s: no %s", dir, want)
				}
			}
			retrain := podSpec(t, byName["Deployment/retrain"])
			c := retrain.Containers[0]
			gpu := c.Resources.Limits["nvidia.com/gpu"]
			backend := envValue(c.Env, "EDGELOOP_BACKEND")
			switch overlay {
			case "cpu":
				if gpu != nil || !strings.HasPrefix(c.Image, "edgeloop/retrain:") || backend != "cpu" {
					t.Errorf("cpu retrain: image %s, backend %q, gpu %v", c.Image, backend, gpu)
				}
			case "gpu":
				if string(gpu) != "1" || !strings.HasPrefix(c.Image, "edgeloop/retrain-cuda:") || backend != "auto" || len(retrain.Tolerations) == 0 {
					t.Errorf("gpu retrain: image %s, backend %q, gpu %s, tolerations %d", c.Image, backend, gpu, len(retrain.Tolerations))
				}
			}
			t.Logf("%s: %d objects valid for Kubernetes %s", dir, len(objs), DefaultKubeVersions)
		})
	}
}

// TestBrokenManifestsFail: each fixture under testdata/broken holds one mistake, and the
// validator must refuse it with an error that names it.
func TestBrokenManifestsFail(t *testing.T) {
	versions := schemas(t)
	cases := map[string][]string{
		"unknown-field":    {"Deployment/curator", "readinesProbe"},
		"wrong-type":       {"StatefulSet/bridge", "/spec/replicas", "integer"},
		"missing-required": {"Service/curator", "/spec/ports/0", "port"},
		"unknown-kind":     {"Deploymnet/curator", "no Kubernetes 1.30.0 schema"},
		"missing-file":     {"retrain-gpu.yaml"},
	}
	dirs, err := os.ReadDir(filepath.Join("testdata", "broken"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(cases) {
		t.Fatalf("%d fixtures in testdata/broken, %d cases", len(dirs), len(cases))
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Check(filepath.Join("testdata", "broken", name), versions)
			if err == nil {
				t.Fatal("a broken manifest passed validation")
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not name %q:\n%v", w, err)
				}
			}
			t.Logf("refused as it should be:\n%v", err)
		})
	}
}

func TestSchemaFile(t *testing.T) {
	for _, c := range [][3]string{
		{"apps/v1", "Deployment", "deployment-apps-v1.json"},
		{"v1", "ConfigMap", "configmap-v1.json"},
		{"policy/v1", "PodDisruptionBudget", "poddisruptionbudget-policy-v1.json"},
		{"networking.k8s.io/v1", "Ingress", "ingress-networking-v1.json"},
	} {
		if got := SchemaFile(c[0], c[1]); got != c[2] {
			t.Errorf("SchemaFile(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

// The few fields of a workload the tests look at.
type pod struct {
	Containers []struct {
		Image string
		Env   []struct{ Name, Value string }
		// Resources.Limits values stay raw JSON: a quantity is a string or a number.
		Resources struct{ Limits map[string]json.RawMessage }
	}
	Tolerations []json.RawMessage
}

func podSpec(t *testing.T, o Object) pod {
	t.Helper()
	var w struct {
		Spec struct{ Template struct{ Spec pod } }
	}
	if err := json.Unmarshal(o.JSON, &w); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	if len(w.Spec.Template.Spec.Containers) == 0 {
		t.Fatalf("%s: no containers", o)
	}
	return w.Spec.Template.Spec
}

func envValue(env []struct{ Name, Value string }, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}
