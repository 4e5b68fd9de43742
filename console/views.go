package console

import (
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/google/uuid"

	"github.com/crescendo-hq/crescendo/scoring"
	"github.com/crescendo-hq/crescendo/store"
)

type overviewData struct {
	Rules    []store.OrgRule
	Timeline timelinePlot
	Shares   sharesPlot
	CanEdit  bool
}

// overview is the console's first page: the organization's offers over
// time, its rules, and its fans' classification shares.
func (c *Console) overview(w http.ResponseWriter, r *http.Request, s session) {
	reply := c.call(r.Context(), s, http.MethodGet, "/v1/rules", nil)
	var body struct {
		Rules []store.OrgRule `json:"rules"`
	}
	if reply.status != http.StatusOK || json.Unmarshal(reply.body, &body) != nil {
		c.apiFailed(w, r, s, reply)
		return
	}
	p := c.page(s, "Overview")
	p.Nav = "overview"
	c.render(w, r, http.StatusOK, "overview", p, overviewData{
		Rules: body.Rules, Timeline: c.timeline(r, s, ""), Shares: c.shares(r, s), CanEdit: s.CanEdit(),
	})
}

// explanation is the API's answer to GET /v1/performers/{id}/fans/{fan_id}/index.
type explanation struct {
	FanID       uuid.UUID             `json:"fan_id"`
	PerformerID string                `json:"performer_id"`
	ProfileID   string                `json:"profile_id"`
	Explanation scoring.Explanation   `json:"explanation"`
	Rules       []store.FanRuleStatus `json:"rules"`
}

type fanPageData struct {
	explanation
	Shares []signalShare
	// Classification is bot detection's verdict; ClassAvailable false says
	// this server has no classification to show (not that the fan is human).
	ClassAvailable bool
	Classified     bool
	Class          Classification
	ClassError     string
}

type signalShare struct {
	scoring.SignalTotal
	Share float64
	Width float64
}

// fanPage explains a fan's index for a performer (?performer=), the offers
// the fan got and why others were not sent, and the fan's classification.
func (c *Console) fanPage(w http.ResponseWriter, r *http.Request, s session) {
	fan, err := uuid.Parse(r.PathValue("fan_id"))
	performer := r.URL.Query().Get("performer")
	if err != nil || performer == "" {
		c.render(w, r, http.StatusNotFound, "error", c.page(s, "Not found"), errorPage{Message: "No such fan, or no performer given."})
		return
	}
	reply := c.call(r.Context(), s, http.MethodGet, "/v1/performers/"+url.PathEscape(performer)+"/fans/"+fan.String()+"/index", nil)
	var ex explanation
	if reply.status != http.StatusOK || json.Unmarshal(reply.body, &ex) != nil {
		c.apiFailed(w, r, s, reply)
		return
	}
	data := fanPageData{explanation: ex}
	for _, sig := range ex.Explanation.Signals {
		sh := signalShare{SignalTotal: sig}
		if ex.Explanation.Total > 0 {
			sh.Share = sig.Points / ex.Explanation.Total
		}
		sh.Width = 200 * sh.Share
		data.Shares = append(data.Shares, sh)
	}
	if c.cfg.Classifications != nil {
		data.ClassAvailable = true
		data.Class, data.Classified, err = c.cfg.Classifications.FanClassification(r.Context(), fan)
		if err != nil {
			c.logger.ErrorContext(r.Context(), "reading classification", "error", err)
			data.ClassError = "The classification could not be read just now."
		}
	}
	p := c.page(s, "Fan "+fan.String()[:8])
	p.Nav = "live"
	c.render(w, r, http.StatusOK, "fan", p, data)
}
