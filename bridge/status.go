package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/mautic-mm/sidecar/store"
)

// sessionCookie holds the token for the status page's browser session.
const sessionCookie = "sidecar_session"

// The status page's bounds. The hourly figures come from at most
// statusHourRows dispatches updated in the last hour (the newest ones), so
// the page stays cheap however busy the sidecar is; the page says when the
// bound was reached.
const (
	statusWindow     = time.Hour
	statusHourRows   = 20000
	statusRecentRows = 50
	statusTimeout    = 5 * time.Second
	statusRefresh    = 10 // seconds, <meta http-equiv="refresh">
	loginMaxBody     = 4 << 10
	detailMaxRunes   = 240
)

// statusCSP allows nothing but the page itself, its stylesheet and forms
// posted back to it: the page has no script at all.
const statusCSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

//go:embed web
var statusFiles embed.FS

// statusPage is the read-only status page at GET /, with its login form.
type statusPage struct {
	app    *App
	tmpl   *template.Template
	css    []byte
	cssTag string // content hash, for the stylesheet's cache-busting query
	want   [32]byte
	csrf   *http.CrossOriginProtection
}

// statusRoutes adds the status page: GET / (the page, or a login form
// without a valid token), POST /login, POST /logout and the stylesheet.
func (a *App) statusRoutes(r *gin.Engine) {
	p := newStatusPage(a)
	r.GET("/", p.show)
	r.POST("/login", p.login)
	r.POST("/logout", p.logout)
	r.GET("/assets/status.css", p.stylesheet)
}

// newStatusPage parses the embedded templates. A parse error is a
// programmer error, caught by every test that builds an App.
func newStatusPage(a *App) *statusPage {
	css, err := statusFiles.ReadFile("web/status.css")
	if err != nil {
		panic(fmt.Sprintf("status page stylesheet: %v", err))
	}
	sum := sha256.Sum256(css)
	tmpl := template.Must(template.New("status").Funcs(template.FuncMap{"num": formatCount}).
		ParseFS(statusFiles, "web/*.html"))
	p := &statusPage{app: a, tmpl: tmpl, css: css, cssTag: hex.EncodeToString(sum[:6]),
		want: sha256.Sum256([]byte(a.cfg.Token)), csrf: http.NewCrossOriginProtection()}
	if u, err := url.Parse(a.cfg.PublicURL); err == nil && u.Scheme != "" && u.Host != "" {
		// Behind a proxy the browser's Origin is the public address.
		_ = p.csrf.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	return p
}

// pageHead is what every page's <head> and header need.
type pageHead struct {
	Title   string
	CSS     string
	Version string
	Now     string
	Refresh int
}

func (p *statusPage) head(title string, now time.Time) pageHead {
	v := p.app.cfg.Version
	if v == "" {
		v = "dev"
	}
	return pageHead{Title: title, CSS: "assets/status.css?v=" + p.cssTag, Version: v, Now: now.Format("2006-01-02 15:04:05") + " UTC"}
}

// loginView is the login form.
type loginView struct {
	pageHead
	Message string
}

// render executes a template into a buffer first, so a failing template
// never sends half a page.
func (p *statusPage) render(c *gin.Context, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		p.app.log.Error("status page template", "err", err, "template", name)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

func (p *statusPage) showLogin(c *gin.Context, status int, msg string) {
	p.render(c, status, "login.html", loginView{pageHead: p.head("Sign in · sidecar", time.Now().UTC()), Message: msg})
}

// show is GET /: the status page with a valid token (header or session
// cookie), else the login form (200, no data).
func (p *statusPage) show(c *gin.Context) {
	if !p.app.tokenOK(c.Request, p.want) {
		msg := ""
		if _, err := c.Request.Cookie(sessionCookie); err == nil {
			// The token changed since this browser signed in.
			p.setSession(c, "")
			msg = "Your session is no longer valid. Sign in again."
		}
		p.showLogin(c, http.StatusOK, msg)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), statusTimeout)
	defer cancel()
	now := time.Now().UTC()
	v := dashboardView{pageHead: p.head("Sidecar status", now), State: statusFilter(c.Query("state"))}
	v.Refresh = statusRefresh
	if err := p.load(ctx, now, &v); err != nil {
		p.app.log.Warn("status page", "err", err)
		v.Error = "The status could not be read from the database (see the sidecar's log); the figures below are incomplete."
		p.render(c, http.StatusServiceUnavailable, "dashboard.html", v)
		return
	}
	p.render(c, http.StatusOK, "dashboard.html", v)
}

// login is POST /login: a right token sets the session cookie and
// redirects to the page (303); a wrong one shows the form again (401).
func (p *statusPage) login(c *gin.Context) {
	if !p.sameOrigin(c.Request) {
		p.showLogin(c, http.StatusForbidden, "This form must be sent from the sidecar's own page.")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, loginMaxBody)
	if err := c.Request.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p.showLogin(c, http.StatusRequestEntityTooLarge, "The form was too large.")
			return
		}
		p.showLogin(c, http.StatusBadRequest, "The form could not be read.")
		return
	}
	tok := strings.TrimSpace(c.Request.PostForm.Get("token"))
	// tokenOK reads the token from a header: hand it the submitted one.
	probe := &http.Request{Header: http.Header{}}
	probe.Header.Set("X-Sidecar-Token", tok)
	if tok == "" || !p.app.tokenOK(probe, p.want) {
		p.app.log.Info("status page sign-in refused")
		p.showLogin(c, http.StatusUnauthorized, "Wrong token.")
		return
	}
	p.setSession(c, tok)
	c.Redirect(http.StatusSeeOther, "/")
}

// logout is POST /logout: it clears the session cookie.
func (p *statusPage) logout(c *gin.Context) {
	if !p.sameOrigin(c.Request) {
		p.showLogin(c, http.StatusForbidden, "This form must be sent from the sidecar's own page.")
		return
	}
	p.setSession(c, "")
	c.Redirect(http.StatusSeeOther, "/")
}

// setSession sets the session cookie to tok, or clears it when tok is empty.
func (p *statusPage) setSession(c *gin.Context, tok string) {
	// Secure when the browser talks HTTPS: directly, through a TLS proxy
	// (X-Forwarded-Proto), or per SIDECAR_PUBLIC_URL.
	secure := c.Request.TLS != nil || strings.EqualFold(c.GetHeader("X-Forwarded-Proto"), "https") ||
		strings.HasPrefix(strings.ToLower(p.app.cfg.PublicURL), "https://")
	ck := &http.Cookie{Name: sessionCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: secure}
	if tok == "" {
		ck.MaxAge = -1
	}
	http.SetCookie(c.Writer, ck)
}

// sameOrigin guards the login and logout forms against cross-site posts:
// the SameSite=Strict cookie covers the session, this covers the forms.
// Browsers send Sec-Fetch-Site or Origin (checked by net/http's
// CrossOriginProtection); a Referer, when present, must name our host.
// Requests with none of them are not from a browser and pass.
func (p *statusPage) sameOrigin(r *http.Request) bool {
	if err := p.csrf.Check(r); err != nil {
		return false
	}
	if r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" {
		return true
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return true
	}
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	pub, err := url.Parse(p.app.cfg.PublicURL)
	return err == nil && pub.Host != "" && strings.EqualFold(u.Host, pub.Host)
}

// stylesheet serves the page's CSS; its URL carries a content hash, so it
// may be cached.
func (p *statusPage) stylesheet(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=86400")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "text/css; charset=utf-8", p.css)
}

// statusFilter returns the state filter, "" (all) for anything unknown.
func statusFilter(s string) string {
	switch s {
	case store.Accepted, store.Sent, store.Queued, store.Failed:
		return s
	}
	return ""
}

// dashboardView is everything the status page shows.
type dashboardView struct {
	pageHead
	Error        string
	Backlog      int64
	QueuePending int64
	QueueDue     int64
	Channels     []string // channels with a sender
	Hour         hourSummary
	State        string // the recent list's filter, "" for all
	Filters      []filterLink
	Recent       []dispatchRow
}

// filterLink is one state filter above the recent dispatches.
type filterLink struct {
	Label, Href string
	Active      bool
}

// load fills v from the database: queue depth, backlog, the last hour and
// the recent dispatches.
func (p *statusPage) load(ctx context.Context, now time.Time, v *dashboardView) error {
	for _, n := range p.app.senders.Names() {
		v.Channels = append(v.Channels, string(n))
	}
	v.Filters = []filterLink{{Label: "all", Href: "./", Active: v.State == ""}}
	for _, st := range []string{store.Accepted, store.Sent, store.Queued, store.Failed} {
		v.Filters = append(v.Filters, filterLink{Label: st, Href: "?state=" + st, Active: v.State == st})
	}
	var err error
	// The same count refreshQueueDepth exports as sidecar_queue_depth.
	v.QueuePending, v.QueueDue, err = p.app.db.QueueDepth(ctx, p.app.db, v.Channels, now)
	if err != nil {
		return fmt.Errorf("status queue depth: %w", err)
	}
	if v.Backlog, err = p.app.store.Backlog(ctx); err != nil {
		return fmt.Errorf("status backlog: %w", err)
	}
	since := now.Add(-statusWindow)
	hour, err := p.app.store.Recent(ctx, since, statusHourRows+1)
	if err != nil {
		return fmt.Errorf("status last hour: %w", err)
	}
	v.Hour = summarize(hour, statusHourRows)
	v.Hour.Since = since.Format("15:04") + " UTC"
	recent, err := p.app.store.Latest(ctx, v.State, statusRecentRows)
	if err != nil {
		return fmt.Errorf("status recent dispatches: %w", err)
	}
	for _, d := range recent {
		v.Recent = append(v.Recent, toDispatchRow(d))
	}
	return nil
}

// dispatchRow is one line of the recent dispatches.
type dispatchRow struct {
	ID        int64
	Time      string
	Created   string
	ContactID int64
	MessageID int64
	State     string
	Channel   string
	QueueID   int64
	Attempts  int
	Trace     []traceRow
	BadTrace  bool
}

// traceRow is one trace entry as shown: the detail is cut to a readable
// length, the whole text is in Full (a tooltip).
type traceRow struct {
	Channel, Decision, Reason, Detail, Full string
}

func toDispatchRow(d store.Dispatch) dispatchRow {
	row := dispatchRow{ID: d.ID, Time: d.UpdatedAt.Format("2006-01-02 15:04:05"), Created: d.CreatedAt.Format("2006-01-02 15:04:05") + " UTC",
		ContactID: d.ContactID, MessageID: d.MessageID, State: d.State, Channel: d.Channel, QueueID: d.QueueID, Attempts: d.Attempts}
	var trace []TraceEntry
	if err := json.Unmarshal(d.Trace, &trace); err != nil {
		row.BadTrace = true
	}
	for _, e := range trace {
		row.Trace = append(row.Trace, traceRow{Channel: e.Channel, Decision: string(e.Decision), Reason: string(e.Reason),
			Detail: shorten(e.Detail, detailMaxRunes), Full: e.Detail})
	}
	return row
}

// shorten cuts s to n runes, marking the cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// hourSummary is the last hour: dispatches per channel and state, and why
// channels were passed over.
type hourSummary struct {
	Since     string
	Rows      int  // dispatches read
	Truncated bool // more than Limit dispatches were updated in the hour
	Limit     int
	Sent      int
	Queued    int
	Failed    int
	Accepted  int // still being routed (rerouting after a provider outage)
	Channels  []channelTotals
	Reasons   []reasonCount
	// ChannelChart and ReasonChart are the two SVG bar charts.
	ChannelChart chart
	ReasonChart  chart
}

// channelTotals counts one channel's dispatches: sent and queued on it, and
// failed dispatches whose trace ended on it.
type channelTotals struct {
	Channel              string
	Sent, Queued, Failed int
}

// Total is the number of dispatches counted for the channel.
func (t channelTotals) Total() int { return t.Sent + t.Queued + t.Failed }

// reasonCount is how often a channel was passed over for one reason.
type reasonCount struct {
	Channel string
	Reason  string
	Failure bool // a provider failure (fell through), not a skip
	Count   int
}

// noChannel labels failed dispatches with an empty trace.
const noChannel = "(none)"

// summarize aggregates the dispatches updated in the last hour (newest
// first, at most limit of them; one more tells that the bound was hit).
// Per channel it counts sent and queued dispatches by their channel, and
// failed ones by the last channel of their trace. Per channel and reason it
// counts the trace entries that passed a channel over: skipped entries, and
// provider failures after which routing fell through (failed_permanent, and
// failed_transient once the retries were exhausted). A dispatch rerouted
// within the hour counts once, with its whole trace.
func summarize(list []store.Dispatch, limit int) hourSummary {
	s := hourSummary{Limit: limit}
	if len(list) > limit {
		list, s.Truncated = list[:limit], true
	}
	s.Rows = len(list)
	per := map[string]*channelTotals{}
	total := func(ch string) *channelTotals {
		if ch == "" {
			ch = noChannel
		}
		t, ok := per[ch]
		if !ok {
			t = &channelTotals{Channel: ch}
			per[ch] = t
		}
		return t
	}
	type rk struct {
		ch, reason string
		failure    bool
	}
	reasons := map[rk]int{}
	for _, d := range list {
		var trace []TraceEntry
		_ = json.Unmarshal(d.Trace, &trace) // a broken trace counts as empty
		switch d.State {
		case store.Sent:
			s.Sent++
			total(d.Channel).Sent++
		case store.Queued:
			s.Queued++
			total(d.Channel).Queued++
		case store.Failed:
			s.Failed++
			last := ""
			if len(trace) > 0 {
				last = trace[len(trace)-1].Channel
			}
			total(last).Failed++
		case store.Accepted:
			s.Accepted++
		}
		for _, e := range trace {
			switch {
			case e.Decision == DecisionSkipped:
				reasons[rk{e.Channel, string(e.Reason), false}]++
			case e.Decision == DecisionFailedPermanent,
				e.Decision == DecisionFailedTransient && e.Reason == ReasonProviderTransientExhausted:
				reasons[rk{e.Channel, string(e.Reason), true}]++
			}
		}
	}
	for _, t := range per {
		s.Channels = append(s.Channels, *t)
	}
	sort.Slice(s.Channels, func(i, j int) bool { return s.Channels[i].Channel < s.Channels[j].Channel })
	for k, n := range reasons {
		s.Reasons = append(s.Reasons, reasonCount{Channel: k.ch, Reason: k.reason, Failure: k.failure, Count: n})
	}
	sort.Slice(s.Reasons, func(i, j int) bool {
		a, b := s.Reasons[i], s.Reasons[j]
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Reason < b.Reason
	})
	s.ChannelChart = channelChart(s.Channels)
	s.ReasonChart = reasonChart(s.Reasons)
	return s
}

// chart is a horizontal bar chart drawn as inline SVG, one row per label:
// the label on a line of its own, the bar under it, the count after the
// bar. Horizontal positions are percentages of the SVG's width and text is
// in CSS pixels, so the chart stays legible at any width. Geometry is
// computed here; the template only places it.
type chart struct {
	ID, Label string // the SVG's id and accessible name
	Height    int    // pixels
	Rows      []chartRow
}

type chartRow struct {
	Label    string
	LabelY   int
	ValueY   int
	Value    string
	ValueX   string // a percentage
	Segments []chartSegment
}

type chartSegment struct {
	X, Width  string // percentages
	Y, Height int    // pixels
	Class     string // CSS class: its colour
	Channel   string
	Kind      string // sent, queued, failed, or the reason
	Title     string // tooltip
}

// Chart geometry: pixels vertically, percent of the width horizontally.
const (
	chartRowH = 36
	chartBarY = 17 // bar top, from the row's top
	chartBarH = 12
	chartPad  = 2
	chartRoom = 86.0 // percent of the width the longest bar takes; the rest is for its count
)

func newChart(id, label string, n int) chart {
	return chart{ID: id, Label: label, Height: n*chartRowH + 2*chartPad}
}

// barScale maps a count to a bar length in percent, the largest count
// filling the room.
func barScale(top int) func(int) float64 {
	return func(n int) float64 {
		if top <= 0 || n <= 0 {
			return 0
		}
		// At least half a percent, so a count of 1 next to thousands still shows.
		return max(0.5, math.Round(chartRoom*float64(n)/float64(top)*100)/100)
	}
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }

// row adds a row whose segments (X and Width in percent) end at end.
func (c *chart) row(label string, total int, end float64, segs []chartSegment) {
	top := chartPad + len(c.Rows)*chartRowH
	for j := range segs {
		segs[j].Y, segs[j].Height = top+chartBarY, chartBarH
	}
	c.Rows = append(c.Rows, chartRow{Label: label, LabelY: top + 12, ValueY: top + chartBarY + chartBarH - 2,
		Value: formatCount(total), ValueX: pct(math.Round((end+1)*100) / 100), Segments: segs})
}

// channelChart draws sent, queued and failed per channel, stacked.
func channelChart(list []channelTotals) chart {
	c := newChart("chart-channels", "Dispatches sent, queued and failed per channel in the last hour", len(list))
	top := 0
	for _, t := range list {
		top = max(top, t.Total())
	}
	scale := barScale(top)
	for _, t := range list {
		x := 0.0
		var segs []chartSegment
		for _, part := range []struct {
			kind string
			n    int
		}{{store.Sent, t.Sent}, {store.Queued, t.Queued}, {store.Failed, t.Failed}} {
			w := scale(part.n)
			if w == 0 {
				continue
			}
			segs = append(segs, chartSegment{X: pct(x), Width: pct(w), Class: "bar-" + part.kind, Channel: t.Channel, Kind: part.kind,
				Title: fmt.Sprintf("%s: %s %s", t.Channel, formatCount(part.n), part.kind)})
			x += w
		}
		c.row(t.Channel, t.Total(), x, segs)
	}
	return c
}

// reasonChart draws one bar per channel and reason.
func reasonChart(list []reasonCount) chart {
	c := newChart("chart-reasons", "Channels skipped or failed per channel and reason in the last hour", len(list))
	top := 0
	for _, r := range list {
		top = max(top, r.Count)
	}
	scale := barScale(top)
	for _, r := range list {
		class, what := "bar-skip", "skipped"
		if r.Failure {
			class, what = "bar-failure", "provider failure"
		}
		w := scale(r.Count)
		seg := chartSegment{X: "0%", Width: pct(w), Class: class, Channel: r.Channel, Kind: r.Reason,
			Title: fmt.Sprintf("%s %s (%s): %s", r.Channel, r.Reason, what, formatCount(r.Count))}
		c.row(r.Channel+" · "+r.Reason, r.Count, w, []chartSegment{seg})
	}
	return c
}

// formatCount writes n with thousands separators: 20000 → "20,000".
func formatCount(n any) string {
	var v int64
	switch x := n.(type) {
	case int:
		v = int64(x)
	case int64:
		v = x
	default:
		return fmt.Sprint(n)
	}
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
