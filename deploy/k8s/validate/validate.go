// Command validate renders kustomizations with the kustomize API (as `kubectl apply -k`
// does) and validates every object they produce against the Kubernetes JSON schemas, so
// that a manifest Kubernetes would refuse fails the build instead of a deployment.
//
//	go run . -schemas DIR [-kube-versions 1.30.0,1.37.0] KUSTOMIZATION_DIR...
//
// DIR holds the strict schemas (unknown fields refused) of each version in
// v<version>-local-strict/, as deploy/local/k8s-schemas.sh installs them from PyPI's
// kubernetes-validate. It is a module of its own so that the services' go.mod does not
// carry kustomize's dependencies; `make k8s-validate` runs its tests.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Object is one rendered Kubernetes object.
type Object struct {
	APIVersion, Kind, Namespace, Name string
	// JSON is the whole object.
	JSON []byte
}

func (o Object) String() string {
	s := o.Kind + "/" + o.Name
	if o.Namespace != "" {
		s = o.Namespace + "/" + s
	}
	return s + " (" + o.APIVersion + ")"
}

// Render builds the kustomization in dir as `kubectl apply -k dir` would.
func Render(dir string) ([]Object, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	var out []Object
	for _, r := range m.Resources() {
		js, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, r.CurId(), err)
		}
		out = append(out, Object{APIVersion: r.GetApiVersion(), Kind: r.GetKind(),
			Namespace: r.GetNamespace(), Name: r.GetName(), JSON: js})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kustomize %s: no objects", dir)
	}
	return out, nil
}

// Schemas validates objects against one Kubernetes version's strict JSON schemas.
type Schemas struct {
	// Version is the Kubernetes version, e.g. 1.37.0.
	Version string
	dir     string
	byFile  map[string]*jsonschema.Schema
	comp    *jsonschema.Compiler
}

// schemaURL is the URL a schema file is compiled from; loader maps it to the version's
// directory. Each schema declares its own $id under https://kubernetes.io/api/ and
// refers to /api/_definitions.json, that is definitionsURL, which loader maps to the
// same directory's _definitions.json: nothing is fetched.
const (
	schemaURL      = "file:///schemas/"
	definitionsURL = "https://kubernetes.io/api/_definitions.json"
)

// NewSchemas reads the schemas of version under root (root/v<version>-local-strict).
func NewSchemas(root, version string) (*Schemas, error) {
	dir := filepath.Join(root, "v"+version+"-local-strict")
	if _, err := os.Stat(filepath.Join(dir, "_definitions.json")); err != nil {
		return nil, fmt.Errorf("no Kubernetes %s schemas in %s (deploy/local/k8s-schemas.sh install): %w", version, root, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(loader{dir: dir})
	return &Schemas{Version: version, dir: dir, byFile: map[string]*jsonschema.Schema{}, comp: c}, nil
}

type loader struct{ dir string }

func (l loader) Load(url string) (any, error) {
	name, ok := strings.CutPrefix(url, schemaURL)
	if url == definitionsURL {
		name, ok = "_definitions.json", true
	}
	if !ok || strings.Contains(name, "/") {
		return nil, fmt.Errorf("schema %s is outside the schema directory", url)
	}
	f, err := os.Open(filepath.Join(l.dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}

// SchemaFile names the schema of apiVersion and kind as the schemas' generator did:
// the kind in lower case, the API group's first label, the version
// (apps/v1 Deployment: deployment-apps-v1.json; v1 Service: service-v1.json;
// networking.k8s.io/v1 Ingress: ingress-networking-v1.json).
func SchemaFile(apiVersion, kind string) string {
	gv := apiVersion
	if group, version, ok := strings.Cut(apiVersion, "/"); ok {
		group, _, _ = strings.Cut(group, ".")
		gv = group + "-" + version
	}
	return strings.ToLower(kind) + "-" + strings.ToLower(gv) + ".json"
}

var safeName = regexp.MustCompile(`^[a-z0-9.-]+\.json$`)

// Validate checks one object; an object whose kind has no schema is an error, not a
// pass (a typo in a kind or apiVersion, or a custom resource this validator cannot see).
func (s *Schemas) Validate(o Object) error {
	if o.APIVersion == "" || o.Kind == "" {
		return fmt.Errorf("%s: no apiVersion or kind", o)
	}
	file := SchemaFile(o.APIVersion, o.Kind)
	sch, ok := s.byFile[file]
	if !ok {
		if !safeName.MatchString(file) {
			return fmt.Errorf("%s: no Kubernetes %s schema for this kind", o, s.Version)
		}
		if _, err := os.Stat(filepath.Join(s.dir, file)); err != nil {
			return fmt.Errorf("%s: no Kubernetes %s schema for this kind (%s)", o, s.Version, file)
		}
		var err error
		if sch, err = s.comp.Compile(schemaURL + file); err != nil {
			return fmt.Errorf("compile schema %s: %w", file, err)
		}
		s.byFile[file] = sch
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(o.JSON))
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	if err := sch.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("%s: invalid for Kubernetes %s:\n%s", o, s.Version, indent(detail(ve)))
		}
		return fmt.Errorf("%s: invalid for Kubernetes %s: %w", o, s.Version, err)
	}
	return nil
}

// detail lists the innermost causes of a validation error, one a line, each with the
// path of the offending field; the schema's oneOf/anyOf wrappers add nothing to read.
func detail(ve *jsonschema.ValidationError) string {
	p := message.NewPrinter(language.English)
	var lines []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			lines = append(lines, "/"+strings.Join(e.InstanceLocation, "/")+": "+e.ErrorKind.LocalizedString(p))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(lines, "\n")
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// Check renders dir and validates each object against each version's schemas; it returns
// the objects and every problem found, joined.
func Check(dir string, versions []*Schemas) ([]Object, error) {
	objs, err := Render(dir)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, s := range versions {
		for _, o := range objs {
			if err := s.Validate(o); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return objs, errors.Join(errs...)
}

// LoadVersions reads the schemas of each comma-separated version under root.
func LoadVersions(root, versions string) ([]*Schemas, error) {
	var out []*Schemas
	for _, v := range strings.Split(versions, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		s, err := NewSchemas(root, v)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no Kubernetes version to validate against")
	}
	return out, nil
}

// DefaultKubeVersions are the versions deploy/local/k8s-schemas.sh installs.
const DefaultKubeVersions = "1.30.0,1.37.0"

func main() {
	root := flag.String("schemas", os.Getenv("EDGELOOP_K8S_SCHEMAS"), "directory of the schemas (deploy/local/k8s-schemas.sh install prints it)")
	kube := flag.String("kube-versions", DefaultKubeVersions, "comma-separated Kubernetes versions to validate against")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: validate -schemas DIR [-kube-versions V,...] KUSTOMIZATION_DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *root == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	versions, err := LoadVersions(*root, *kube)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	failed := false
	for _, dir := range flag.Args() {
		objs, err := Check(dir, versions)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s:\n%v\n", dir, err)
			failed = true
			continue
		}
		fmt.Printf("ok   %s: %d objects valid for Kubernetes %s\n", dir, len(objs), *kube)
	}
	if failed {
		os.Exit(1)
	}
}
