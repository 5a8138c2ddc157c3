package registry

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edgeloop/edgeloop/pkg/contract"
	"github.com/edgeloop/edgeloop/pkg/httpapi"
	"github.com/edgeloop/edgeloop/pkg/project"
)

// Mount adds the registry's endpoints to the curator's API:
//
//	GET  /api/v1/projects/{p}/models                 versions with decisions
//	GET  /api/v1/projects/{p}/models/{v}             one version
//	GET  /api/v1/projects/{p}/models/{v}/artifact    the signed model (devices too; Range supported)
//	GET  /api/v1/projects/{p}/models/{v}/metrics     metrics.json
//	GET  /api/v1/projects/{p}/models/{v}/report      report.png
//	GET  /api/v1/projects/{p}/release                the release, its site releases and their history (devices too)
//	GET  /api/v1/projects/{p}/sites/{site}/release   one site's release and its status (devices too)
//	POST /api/v1/projects/{p}/sites/{site}/revoke    admin: withdraw a site's release
//	POST /api/v1/projects/{p}/models/{v}/promote     admin: release v (a site's candidate: to its site)
//	POST /api/v1/projects/{p}/models/{v}/rollback    admin: release an older v
//	POST /api/v1/projects/{p}/retrain                 admin: train now
func Mount(api *httpapi.Mux, r *Registry) {
	api.Handle("GET /api/v1/projects/{p}/models", "", func(w http.ResponseWriter, req *http.Request) error {
		vs, err := r.Versions(req.Context(), req.PathValue("p"))
		if err != nil {
			return err
		}
		if vs == nil {
			vs = []*Version{}
		}
		return writeJSON(w, vs)
	})
	api.Handle("GET /api/v1/projects/{p}/models/{v}", "", func(w http.ResponseWriter, req *http.Request) error {
		v, err := version(req)
		if err != nil {
			return err
		}
		ver, err := r.Version(req.Context(), req.PathValue("p"), v)
		if err != nil {
			return err
		}
		return writeJSON(w, ver)
	})
	file := func(name, ct string) func(w http.ResponseWriter, req *http.Request) error {
		return func(w http.ResponseWriter, req *http.Request) error {
			v, err := version(req)
			if err != nil {
				return err
			}
			b, err := r.File(req.Context(), req.PathValue("p"), v, name)
			if err != nil {
				return err
			}
			w.Header().Set("Content-Type", ct)
			http.ServeContent(w, req, name, time.Time{}, bytes.NewReader(b))
			return nil
		}
	}
	api.Handle("GET /api/v1/projects/{p}/models/{v}/artifact", httpapi.RoleDevice, file("model.elm", "application/octet-stream"))
	api.Handle("GET /api/v1/projects/{p}/models/{v}/metrics", "", file("metrics.json", "application/json"))
	api.Handle("GET /api/v1/projects/{p}/models/{v}/report", "", file("report.png", "image/png"))
	api.Handle("GET /api/v1/projects/{p}/release", httpapi.RoleDevice, func(w http.ResponseWriter, req *http.Request) error {
		o, err := r.Overview(req.Context(), req.PathValue("p"))
		if err != nil {
			return err
		}
		return writeJSON(w, o)
	})
	api.Handle("GET /api/v1/projects/{p}/sites/{site}/release", httpapi.RoleDevice, func(w http.ResponseWriter, req *http.Request) error {
		site, err := siteOf(req)
		if err != nil {
			return err
		}
		rel, err := r.SiteRelease(req.Context(), req.PathValue("p"), site)
		if err != nil {
			return err
		}
		var base *Release
		if base, err = r.Current(req.Context(), req.PathValue("p")); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return writeJSON(w, SiteView{Release: rel, Status: SiteStatus(rel, base)})
	})
	api.Handle("POST /api/v1/projects/{p}/sites/{site}/revoke", httpapi.RoleAdmin, func(w http.ResponseWriter, req *http.Request) error {
		site, err := siteOf(req)
		if err != nil {
			return err
		}
		rel, err := r.RevokeSiteRelease(req.Context(), req.PathValue("p"), site, httpapi.UserOf(req.Context()).Name)
		if err != nil {
			return err
		}
		return writeJSON(w, rel)
	})
	change := func(rollback bool) func(w http.ResponseWriter, req *http.Request) error {
		return func(w http.ResponseWriter, req *http.Request) error {
			v, err := version(req)
			if err != nil {
				return err
			}
			reason := "promote"
			if rollback {
				reason = "rollback"
			}
			ver, err := r.Version(req.Context(), req.PathValue("p"), v)
			if err != nil {
				return err
			}
			var rel *Release
			if ver.Site != "" && !rollback { // a site's candidate is released to its site
				rel, err = r.SetSiteRelease(req.Context(), req.PathValue("p"), ver.Site, v, reason, httpapi.UserOf(req.Context()).Name)
			} else {
				rel, err = r.SetRelease(req.Context(), req.PathValue("p"), v, reason, httpapi.UserOf(req.Context()).Name, rollback)
			}
			if err != nil {
				if !errors.Is(err, ErrNotFound) {
					err = fmt.Errorf("%w: %v", project.ErrConflict, err)
				}
				return err
			}
			return writeJSON(w, rel)
		}
	}
	api.Handle("POST /api/v1/projects/{p}/retrain", httpapi.RoleAdmin, func(w http.ResponseWriter, req *http.Request) error {
		var body struct {
			// Mode is replay, full, scratch or adapt-bn; empty: the project's policy.
			Mode string `json:"mode"`
			// Site, with mode adapt-bn, re-estimates the statistics on that device's
			// frames only.
			Site string `json:"site,omitempty"`
		}
		if req.ContentLength != 0 {
			if err := httpapi.Decode(req, &body); err != nil {
				return err
			}
		}
		if body.Site != "" {
			if body.Mode != "adapt-bn" {
				return fmt.Errorf("%w: a site is for mode adapt-bn, not %q", project.ErrInvalid, body.Mode)
			}
			body.Mode += ":" + body.Site
		}
		id, err := r.RequestTraining(req.Context(), req.PathValue("p"), httpapi.UserOf(req.Context()).Name, body.Mode)
		if err != nil {
			return err
		}
		return httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"request": id})
	})
	api.Handle("POST /api/v1/projects/{p}/models/{v}/promote", httpapi.RoleAdmin, change(false))
	api.Handle("POST /api/v1/projects/{p}/models/{v}/rollback", httpapi.RoleAdmin, change(true))
}

// siteOf reads the path's site, a device id.
func siteOf(req *http.Request) (string, error) {
	site := req.PathValue("site")
	if err := contract.CheckID("site (device)", site); err != nil {
		return "", fmt.Errorf("%w: %v", project.ErrInvalid, err)
	}
	return site, nil
}

func version(req *http.Request) (int64, error) {
	v, err := strconv.ParseInt(req.PathValue("v"), 10, 64)
	if err != nil || v < 1 {
		return 0, fmt.Errorf("%w: model version %q: want a positive integer", project.ErrInvalid, req.PathValue("v"))
	}
	return v, nil
}

func writeJSON(w http.ResponseWriter, v any) error { return httpapi.WriteJSON(w, http.StatusOK, v) }
