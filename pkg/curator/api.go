package curator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/edgeloop/edgeloop/pkg/objstore"
)

// API serves /api/v1/. Models endpoints are added by whoever owns the registry.
type API struct {
	c      *Curator
	tokens *Tokens
	mux    *http.ServeMux
}

// NewAPI returns the curator's HTTP API.
func NewAPI(c *Curator, tokens *Tokens) *API {
	a := &API{c: c, tokens: tokens, mux: http.NewServeMux()}
	h := func(pattern, role string, f func(w http.ResponseWriter, r *http.Request) error) {
		a.Handle(pattern, role, f)
	}
	h("GET /api/v1/me", "", func(w http.ResponseWriter, r *http.Request) error {
		return WriteJSON(w, http.StatusOK, UserOf(r.Context()))
	})
	h("GET /api/v1/projects", "", a.listProjects)
	h("POST /api/v1/projects", RoleAdmin, a.createProject)
	h("GET /api/v1/projects/{p}", "", a.getProject)
	h("PUT /api/v1/projects/{p}", RoleAdmin, a.updateProject)
	h("GET /api/v1/projects/{p}/batches", "", a.listBatches)
	h("GET /api/v1/projects/{p}/batches/{b}", "", a.getBatch)
	h("POST /api/v1/projects/{p}/batches/{b}/claim", RoleAnnotator, a.batchAction(a.c.Claim))
	h("POST /api/v1/projects/{p}/batches/{b}/renew", RoleAnnotator, a.batchAction(a.c.Renew))
	h("POST /api/v1/projects/{p}/batches/{b}/submit", RoleAnnotator, a.batchAction(a.c.Submit))
	h("POST /api/v1/projects/{p}/batches/{b}/approve", RoleReviewer, a.batchAction(a.c.Approve))
	h("POST /api/v1/projects/{p}/batches/{b}/reject", RoleReviewer, a.reject)
	h("PUT /api/v1/projects/{p}/batches/{b}/items/{e}", RoleAnnotator, a.saveItem)
	h("GET /api/v1/projects/{p}/examples/{e}", "", a.getExample)
	h("GET /api/v1/projects/{p}/examples/{e}/image", "", a.getImage)
	h("GET /api/v1/projects/{p}/dataset", "", a.getDataset)
	h("GET /api/v1/projects/{p}/dataset/export", "", a.export)
	h("POST /api/v1/projects/{p}/dataset/import", RoleAdmin, a.importDataset)
	return a
}

// Handle adds an endpoint that requires role ("" for any authenticated user); f's
// errors become JSON error responses with the matching status.
func (a *API) Handle(pattern, role string, f func(w http.ResponseWriter, r *http.Request) error) {
	a.mux.Handle(pattern, a.tokens.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if role != "" && !UserOf(r.Context()).Can(role) {
			writeError(w, http.StatusForbidden, "role %q is required for %s %s", role, r.Method, r.URL.Path)
			return
		}
		if err := f(w, r); err != nil {
			writeError(w, status(err), "%v", err)
		}
	})))
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func status(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, objstore.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict), errors.Is(err, ErrExists):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// WriteJSON writes v as a JSON response with the status code.
func WriteJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	_ = WriteJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// decode reads a JSON body strictly.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", ErrInvalid, err)
	}
	return nil
}

func (a *API) listProjects(w http.ResponseWriter, r *http.Request) error {
	ps, err := a.c.st.Projects(r.Context())
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []*Project{}
	}
	return WriteJSON(w, http.StatusOK, ps)
}

func (a *API) createProject(w http.ResponseWriter, r *http.Request) error {
	var p Project
	if err := decode(r, &p); err != nil {
		return err
	}
	p.CreatedAt = time.Now().UTC()
	if err := a.c.st.CreateProject(r.Context(), &p); err != nil {
		if !errors.Is(err, ErrExists) {
			err = fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return err
	}
	return WriteJSON(w, http.StatusCreated, p)
}

func (a *API) getProject(w http.ResponseWriter, r *http.Request) error {
	p, err := a.c.st.Project(r.Context(), r.PathValue("p"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, p)
}

func (a *API) updateProject(w http.ResponseWriter, r *http.Request) error {
	var in Project
	if err := decode(r, &in); err != nil {
		return err
	}
	p, err := a.c.st.UpdateProject(r.Context(), r.PathValue("p"), func(p *Project) error {
		rev, created := p.Rev, p.CreatedAt
		*p = in
		p.Rev, p.CreatedAt = rev, created
		p.Defaults()
		return nil
	})
	if err != nil {
		if !errors.Is(err, objstore.ErrNotFound) {
			err = fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return err
	}
	return WriteJSON(w, http.StatusOK, p)
}

func (a *API) listBatches(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := Filter{State: q.Get("state"), Reason: q.Get("reason"), Class: q.Get("class")}
	for name, dst := range map[string]*float32{"min_confidence": &f.MinConf, "max_confidence": &f.MaxConf} {
		if v := q.Get(name); v != "" {
			x, err := strconv.ParseFloat(v, 32)
			if err != nil || x < 0 || x > 1 {
				return fmt.Errorf("%w: %s=%q: want a number in [0,1]", ErrInvalid, name, v)
			}
			*dst = float32(x)
		}
	}
	bs, err := a.c.List(r.Context(), r.PathValue("p"), f)
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []BatchSummary{}
	}
	return WriteJSON(w, http.StatusOK, bs)
}

// BatchView is a batch with its example records (simulator truth left out).
type BatchView struct {
	*Batch
	Examples map[string]*ExampleRecord `json:"examples"`
}

func (a *API) getBatch(w http.ResponseWriter, r *http.Request) error {
	b, err := a.c.st.Batch(r.Context(), r.PathValue("p"), r.PathValue("b"))
	if err != nil {
		return err
	}
	v := BatchView{Batch: b, Examples: map[string]*ExampleRecord{}}
	for _, it := range b.Items {
		rec, err := a.c.st.Example(r.Context(), b.Project, it.ExampleID)
		if err != nil {
			return err
		}
		rec.Truth = nil
		v.Examples[it.ExampleID] = rec
	}
	return WriteJSON(w, http.StatusOK, v)
}

func (a *API) batchAction(f func(ctx context.Context, project, id, user string) (*Batch, error)) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		b, err := f(r.Context(), r.PathValue("p"), r.PathValue("b"), UserOf(r.Context()).Name)
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, b)
	}
}

func (a *API) reject(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Comments string `json:"comments"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	b, err := a.c.Reject(r.Context(), r.PathValue("p"), r.PathValue("b"), UserOf(r.Context()).Name, in.Comments)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, b)
}

func (a *API) saveItem(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Labels []Label `json:"labels"`
		Status string  `json:"status"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	b, err := a.c.SaveItem(r.Context(), r.PathValue("p"), r.PathValue("b"), r.PathValue("e"), UserOf(r.Context()).Name, in.Labels, in.Status)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, b)
}

func (a *API) getExample(w http.ResponseWriter, r *http.Request) error {
	rec, err := a.c.st.Example(r.Context(), r.PathValue("p"), r.PathValue("e"))
	if err != nil {
		return err
	}
	rec.Truth = nil
	return WriteJSON(w, http.StatusOK, rec)
}

func (a *API) getImage(w http.ResponseWriter, r *http.Request) error {
	rec, err := a.c.st.Example(r.Context(), r.PathValue("p"), r.PathValue("e"))
	if err != nil {
		return err
	}
	o, err := a.c.st.S.Get(r.Context(), rec.Image)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", rec.ContentType)
	w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
	_, err = w.Write(o.Data)
	return err
}

// DatasetView is the dataset's counts.
type DatasetView struct {
	Snapshot string         `json:"snapshot"`
	Total    int            `json:"total"`
	BySplit  map[string]int `json:"by_split"`
	ByClass  map[string]int `json:"by_class"`
	Batches  int            `json:"batches"`
}

func (a *API) getDataset(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.c.st.Project(r.Context(), r.PathValue("p")); err != nil {
		return err
	}
	d, err := a.c.st.Dataset(r.Context(), r.PathValue("p"))
	if err != nil {
		return err
	}
	bs, bc := d.Counts()
	return WriteJSON(w, http.StatusOK, DatasetView{Snapshot: fmt.Sprintf("ds-%d", d.Seq), Total: len(d.Entries), BySplit: bs, ByClass: bc, Batches: len(d.Batches)})
}
