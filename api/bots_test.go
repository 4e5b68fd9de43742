package api_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/store"
)

// TestMarketersOverrideClassesAndWatchResellers: roles and organizations are
// checked, an override is answered with its audit log, and the watch list
// is the organization's own.
func TestMarketersOverrideClassesAndWatchResellers(t *testing.T) {
	te := newTenants(t)
	ctx := t.Context()
	fan := uuid.New()
	if err := te.store.BulkLoadFans(ctx, "streamly", []store.BulkFan{{Fan: store.Fan{ID: fan, TimeZone: "UTC"}, PartnerUserID: "u1"}}); err != nil {
		t.Fatal(err)
	}
	// The fan has activity for org a's performer only.
	if _, err := te.store.Pool().Exec(ctx, `INSERT INTO contributions (fan_id, performer_id, signal, points, event_id, at)
		VALUES ($1, 'pa', 'follow', 1, 'streamly/e1', now())`, fan); err != nil {
		t.Fatal(err)
	}
	aMkt, aView := te.a[store.RoleMarketer], te.a[store.RoleViewer]
	path := "/v1/fans/" + fan.String() + "/classification"

	r := te.expect(t, http.StatusOK, http.MethodGet, path, aView, nil).json(t)
	if c := r["classification"].(map[string]any); c["class"] != "human" {
		t.Fatalf("unclassified fan: %v", r)
	}
	te.expect(t, http.StatusForbidden, http.MethodPut, path, aView, map[string]string{"class": "automated", "note": "x"})
	te.expect(t, http.StatusNotFound, http.MethodGet, path, te.bAdm, nil)
	te.expect(t, http.StatusNotFound, http.MethodGet, "/v1/fans/"+uuid.NewString()+"/classification", aView, nil)
	te.expect(t, http.StatusUnprocessableEntity, http.MethodPut, path, aMkt, map[string]string{"class": "robot", "note": "x"})
	te.expect(t, http.StatusUnprocessableEntity, http.MethodPut, path, aMkt, map[string]string{"class": "automated"})

	r = te.expect(t, http.StatusOK, http.MethodPut, path, aMkt, map[string]string{"class": "automated", "note": "scripted checkout"}).json(t)
	c := r["classification"].(map[string]any)
	log := r["overrides"].([]any)
	if c["class"] != "automated" || c["overridden"] != true || len(log) != 1 {
		t.Fatalf("after override: %v", r)
	}
	if entry := log[0].(map[string]any); entry["previous"] != "human" || entry["note"] != "scripted checkout" || entry["set_by"] == "" {
		t.Fatalf("audit entry %v", entry)
	}
	r = te.expect(t, http.StatusOK, http.MethodDelete, path+"?note=mistake", aMkt, nil).json(t)
	if c := r["classification"].(map[string]any); c["class"] != "human" || len(r["overrides"].([]any)) != 2 {
		t.Fatalf("after clearing: %v", r)
	}
	te.expect(t, http.StatusNotFound, http.MethodDelete, path+"?note=again", aMkt, nil)

	rpath := "/v1/resellers/" + fan.String()
	te.expect(t, http.StatusNotFound, http.MethodPut, rpath, te.bAdm, map[string]string{"note": "x"})
	r = te.expect(t, http.StatusOK, http.MethodPut, rpath, aMkt, map[string]string{"note": "40 tickets to one show"}).json(t)
	if c := r["classification"].(map[string]any); c["class"] != "automated" {
		t.Fatalf("watched fan: %v", r)
	}
	if list := te.expect(t, http.StatusOK, http.MethodGet, "/v1/resellers", aView, nil).json(t)["resellers"].([]any); len(list) != 1 {
		t.Fatalf("org a's watch list: %v", list)
	}
	if list := te.expect(t, http.StatusOK, http.MethodGet, "/v1/resellers", te.bAdm, nil).json(t)["resellers"].([]any); len(list) != 0 {
		t.Fatalf("org b sees org a's watch list: %v", list)
	}
	te.expect(t, http.StatusNoContent, http.MethodDelete, rpath, aMkt, nil)
	te.expect(t, http.StatusNotFound, http.MethodDelete, rpath, aMkt, nil)
}
