package curator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/objstore"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// api serves the curator's part of /api/v1/: projects, batches, examples, datasets.
type api struct {
	c *Curator
}

// Mount adds the curator's endpoints to m.
func Mount(m *httpapi.Mux, c *Curator) {
	a := &api{c: c}
	h := m.Handle
	h("GET /api/v1/projects", "", a.listProjects)
	h("POST /api/v1/projects", httpapi.RoleAdmin, a.createProject)
	h("GET /api/v1/projects/{p}", "", a.getProject)
	h("PUT /api/v1/projects/{p}", httpapi.RoleAdmin, a.updateProject)
	h("DELETE /api/v1/projects/{p}/classes/{class}", httpapi.RoleAdmin, a.removeClass)
	h("GET /api/v1/projects/{p}/batches", "", a.listBatches)
	h("GET /api/v1/projects/{p}/batches/{b}", "", a.getBatch)
	h("POST /api/v1/projects/{p}/batches/{b}/claim", httpapi.RoleAnnotator, a.batchAction(a.c.Claim))
	h("POST /api/v1/projects/{p}/batches/{b}/renew", httpapi.RoleAnnotator, a.batchAction(a.c.Renew))
	h("POST /api/v1/projects/{p}/batches/{b}/submit", httpapi.RoleAnnotator, a.batchAction(a.c.Submit))
	h("POST /api/v1/projects/{p}/batches/{b}/approve", httpapi.RoleReviewer, a.approve)
	h("POST /api/v1/projects/{p}/batches/{b}/reject", httpapi.RoleReviewer, a.reject)
	h("PUT /api/v1/projects/{p}/batches/{b}/items/{e}", httpapi.RoleAnnotator, a.saveItem)
	h("PUT /api/v1/projects/{p}/batches/{b}/items/{e}/review", httpapi.RoleReviewer, a.reviewItem)
	h("GET /api/v1/projects/{p}/examples/{e}", "", a.getExample)
	h("GET /api/v1/projects/{p}/examples/{e}/image", "", a.getImage)
	h("GET /api/v1/projects/{p}/dataset", "", a.getDataset)
	h("GET /api/v1/projects/{p}/dataset/export", "", a.export)
	h("POST /api/v1/projects/{p}/dataset/import", httpapi.RoleAdmin, a.importDataset)
	h("POST /api/v1/backbones", httpapi.RoleAdmin, a.uploadBackbone)
}

func (a *api) listProjects(w http.ResponseWriter, r *http.Request) error {
	all, err := a.c.st.Projects(r.Context())
	if err != nil {
		return err
	}
	u := httpapi.UserOf(r.Context())
	ps := []*project.Project{}
	for _, p := range all {
		if u.Member(p.ID) {
			ps = append(ps, p)
		}
	}
	return httpapi.WriteJSON(w, http.StatusOK, ps)
}

func (a *api) createProject(w http.ResponseWriter, r *http.Request) error {
	var p project.Project
	if err := httpapi.Decode(r, &p); err != nil {
		return err
	}
	if u := httpapi.UserOf(r.Context()); !u.Member(p.ID) {
		return fmt.Errorf("%w: user %s may not create project %q: not one of the token's projects %v", project.ErrForbidden, u.Name, p.ID, u.Projects)
	}
	p.CreatedAt = time.Now().UTC()
	if err := a.c.st.CreateProject(r.Context(), &p); err != nil {
		if !errors.Is(err, project.ErrExists) {
			err = fmt.Errorf("%w: %v", project.ErrInvalid, err)
		}
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, p)
}

func (a *api) getProject(w http.ResponseWriter, r *http.Request) error {
	p, err := a.c.st.Project(r.Context(), r.PathValue("p"))
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, p)
}

func (a *api) updateProject(w http.ResponseWriter, r *http.Request) error {
	var in project.Project
	if err := httpapi.Decode(r, &in); err != nil {
		return err
	}
	p, err := a.c.st.UpdateProjectBy(r.Context(), r.PathValue("p"), httpapi.UserOf(r.Context()).Name, func(p *project.Project) error {
		rev, created := p.Rev, p.CreatedAt
		*p = in
		p.Rev, p.CreatedAt = rev, created
		p.Defaults()
		return nil
	})
	if err != nil {
		if !errors.Is(err, objstore.ErrNotFound) {
			err = fmt.Errorf("%w: %v", project.ErrInvalid, err)
		}
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, p)
}

// removeClass is the explicit removal of a class (`?reason=` is required); it is
// logged in the project's audit.
func (a *api) removeClass(w http.ResponseWriter, r *http.Request) error {
	p, err := a.c.st.RemoveClass(r.Context(), r.PathValue("p"), r.PathValue("class"), httpapi.UserOf(r.Context()).Name, r.URL.Query().Get("reason"))
	if err != nil {
		return err
	}
	a.c.log.Info("class removed", zap.String("project", p.ID), zap.String("class", r.PathValue("class")),
		zap.String("by", httpapi.UserOf(r.Context()).Name), zap.String("reason", r.URL.Query().Get("reason")))
	return httpapi.WriteJSON(w, http.StatusOK, p)
}

func (a *api) listBatches(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := Filter{State: q.Get("state"), Reason: q.Get("reason"), Class: q.Get("class")}
	for name, dst := range map[string]*float32{"min_confidence": &f.MinConf, "max_confidence": &f.MaxConf} {
		if v := q.Get(name); v != "" {
			x, err := strconv.ParseFloat(v, 32)
			if err != nil || x < 0 || x > 1 {
				return fmt.Errorf("%w: %s=%q: want a number in [0,1]", project.ErrInvalid, name, v)
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
	return httpapi.WriteJSON(w, http.StatusOK, bs)
}

// BatchView is a batch with its example records (simulator truth left out).
type BatchView struct {
	*project.Batch
	Examples map[string]*project.ExampleRecord `json:"examples"`
}

func (a *api) getBatch(w http.ResponseWriter, r *http.Request) error {
	b, err := a.c.st.Batch(r.Context(), r.PathValue("p"), r.PathValue("b"))
	if err != nil {
		return err
	}
	v := BatchView{Batch: b, Examples: map[string]*project.ExampleRecord{}}
	for _, it := range b.Items {
		rec, err := a.c.st.Example(r.Context(), b.Project, it.ExampleID)
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, objstore.ErrCorrupt) {
			// A crash's leftover batch whose example was never recorded, or a record gone
			// bad: the other items stay workable, and the UI shows this one without it.
			a.c.log.Warn("batch item without a readable example record", zap.String("project", b.Project), zap.String("batch", b.ID),
				zap.String("example", it.ExampleID), zap.Error(err))
			continue
		}
		if err != nil {
			return err
		}
		rec.Truth = nil
		v.Examples[it.ExampleID] = rec
	}
	return httpapi.WriteJSON(w, http.StatusOK, v)
}

func (a *api) batchAction(f func(ctx context.Context, pid, id, user string) (*project.Batch, error)) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		b, err := f(r.Context(), r.PathValue("p"), r.PathValue("b"), httpapi.UserOf(r.Context()).Name)
		if err != nil {
			return err
		}
		return httpapi.WriteJSON(w, http.StatusOK, b)
	}
}

func (a *api) reject(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Comments string `json:"comments"`
	}
	if err := httpapi.Decode(r, &in); err != nil {
		return err
	}
	b, err := a.c.Reject(r.Context(), r.PathValue("p"), r.PathValue("b"), httpapi.UserOf(r.Context()).Name, in.Comments)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, b)
}

func (a *api) approve(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		ReturnTo string `json:"return_to"`
	}
	if r.ContentLength != 0 { // the body is optional
		if err := httpapi.Decode(r, &in); err != nil {
			return err
		}
	}
	b, err := a.c.ApproveReturning(r.Context(), r.PathValue("p"), r.PathValue("b"), httpapi.UserOf(r.Context()).Name, in.ReturnTo)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, b)
}

func (a *api) reviewItem(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Verdict string `json:"verdict"`
		Comment string `json:"comment"`
	}
	if err := httpapi.Decode(r, &in); err != nil {
		return err
	}
	b, err := a.c.ReviewItem(r.Context(), r.PathValue("p"), r.PathValue("b"), r.PathValue("e"), httpapi.UserOf(r.Context()).Name, in.Verdict, in.Comment)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, b)
}

func (a *api) saveItem(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Labels []project.Label `json:"labels"`
		Status string          `json:"status"`
	}
	if err := httpapi.Decode(r, &in); err != nil {
		return err
	}
	b, err := a.c.SaveItem(r.Context(), r.PathValue("p"), r.PathValue("b"), r.PathValue("e"), httpapi.UserOf(r.Context()).Name, in.Labels, in.Status)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, b)
}

func (a *api) getExample(w http.ResponseWriter, r *http.Request) error {
	rec, err := a.c.st.Example(r.Context(), r.PathValue("p"), r.PathValue("e"))
	if err != nil {
		return err
	}
	rec.Truth = nil
	return httpapi.WriteJSON(w, http.StatusOK, rec)
}

func (a *api) getImage(w http.ResponseWriter, r *http.Request) error {
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

func (a *api) getDataset(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.c.st.Project(r.Context(), r.PathValue("p")); err != nil {
		return err
	}
	d, err := a.c.st.Dataset(r.Context(), r.PathValue("p"))
	if err != nil {
		return err
	}
	bs, bc := d.Counts()
	return httpapi.WriteJSON(w, http.StatusOK, project.DatasetView{Snapshot: fmt.Sprintf("ds-%d", d.Seq), Total: len(d.Entries), BySplit: bs, ByClass: bc, Batches: len(d.Batches)})
}
