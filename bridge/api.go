package bridge

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mautic-mm/sidecar/store"
)

// apiError is the JSON error body of every error answer (DESIGN.md 4).
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func abortJSON(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, apiError{Error: apiErrorBody{Code: code, Message: msg}})
}

// writeError maps an error to its status code and JSON body, in one place.
func (a *App) writeError(c *gin.Context, err error, detail string) {
	var re *requestError
	var sn errSchemaNotCurrent
	msg := func(def string) string {
		if detail != "" {
			return detail
		}
		return def
	}
	switch {
	case errors.As(err, &re):
		abortJSON(c, http.StatusBadRequest, "invalid_request", re.msg)
	case errors.Is(err, errUnknownContact):
		abortJSON(c, http.StatusUnprocessableEntity, "unknown_contact", msg("unknown contact"))
	case errors.Is(err, errUnknownMessage):
		abortJSON(c, http.StatusUnprocessableEntity, "unknown_message", msg("unknown marketing message"))
	case errors.Is(err, errNoCandidate):
		abortJSON(c, http.StatusUnprocessableEntity, "no_candidate_channel", msg("the message has no candidate channel"))
	case errors.Is(err, errBacklogFull):
		abortJSON(c, http.StatusTooManyRequests, "backlog_full", msg("too many dispatches are waiting; try again later"))
	case errors.Is(err, errStopping):
		abortJSON(c, http.StatusServiceUnavailable, "shutting_down", "the sidecar is shutting down")
	case errors.As(err, &sn):
		abortJSON(c, http.StatusServiceUnavailable, "schema_not_current", sn.Error())
	case errors.Is(err, errUnavailable), store.Unreachable(err):
		abortJSON(c, http.StatusServiceUnavailable, "database_unavailable", "the database is unavailable")
	case errors.Is(err, store.ErrNotFound):
		abortJSON(c, http.StatusNotFound, "not_found", msg("no such dispatch"))
	case errors.Is(err, store.ErrNotFailed):
		abortJSON(c, http.StatusConflict, "not_failed", msg(err.Error()))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		abortJSON(c, http.StatusServiceUnavailable, "timeout", "the request did not finish in time")
	default:
		a.log.Error("internal error", "err", err, "path", c.FullPath())
		abortJSON(c, http.StatusInternalServerError, "internal", "internal error")
	}
}

func (a *App) routes() http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(a.recovery(), a.observeRequests())
	r.NoRoute(func(c *gin.Context) { abortJSON(c, http.StatusNotFound, "not_found", "no such endpoint") })
	r.NoMethod(func(c *gin.Context) {
		abortJSON(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed here")
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", func(c *gin.Context) {
		if err := a.Ready(c.Request.Context()); err != nil {
			a.writeError(c, err, "")
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{})))
	r.POST("/v1/callbacks/twilio", a.twilioCallback)

	v1 := r.Group("/v1", a.auth())
	v1.POST("/campaign/message", a.campaignMessage)
	v1.GET("/campaign/message", a.campaignMessage)
	v1.GET("/dispatches/:id", a.getDispatch)
	v1.POST("/dispatches/:id/retry", a.retryDispatch)
	v1.GET("/route", a.routePreview)
	v1.POST("/simulate", a.simulate)
	a.statusRoutes(r)
	return r
}

// recovery turns a panic into a JSON 500 and an error log.
func (a *App) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if rec := recover(); rec != nil {
				a.log.Error("panic in handler", "panic", fmt.Sprint(rec), "path", c.Request.URL.Path, "stack", string(debug.Stack()))
				abortJSON(c, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		c.Next()
	}
}

// observeRequests logs and counts every request.
func (a *App) observeRequests() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		took := time.Since(start)
		a.metrics.Requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		a.metrics.RequestDuration.WithLabelValues(route).Observe(took.Seconds())
		level := slog.LevelDebug
		switch {
		case status >= 500:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelInfo
		}
		if a.log.Enabled(c.Request.Context(), level) { // spares boxing the attributes of a dropped record
			a.log.Log(c.Request.Context(), level, "http request", "method", c.Request.Method, "route", route,
				"status", status, "duration_ms", float64(took.Microseconds())/1000)
		}
	}
}

// auth checks the bearer token (or X-Sidecar-Token) in constant time.
func (a *App) auth() gin.HandlerFunc {
	want := sha256.Sum256([]byte(a.cfg.Token))
	return func(c *gin.Context) {
		if !a.tokenOK(c.Request, want) {
			c.Header("WWW-Authenticate", `Bearer realm="sidecar"`)
			abortJSON(c, http.StatusUnauthorized, "unauthorized", "missing or wrong token")
			return
		}
		c.Next()
	}
}

func (a *App) tokenOK(r *http.Request, want [32]byte) bool {
	if a.cfg.Token == "" {
		return false
	}
	got := r.Header.Get("X-Sidecar-Token")
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		got = strings.TrimSpace(tok)
	}
	if got == "" {
		if ck, err := r.Cookie(sessionCookie); err == nil {
			got = ck.Value
		}
	}
	if got == "" {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// campaignMessage is POST/GET /v1/campaign/message, the target of Mautic's
// "Send a webhook" action. Checks in DESIGN.md 6.6 order: 401 (middleware),
// 415, 413, 400, then the intake's 422, 429, 503.
func (a *App) campaignMessage(c *gin.Context) {
	var (
		f   fields
		err error
	)
	if c.Request.Method == http.MethodGet {
		f, err = formFields(c.Request.URL.RawQuery)
	} else {
		kind := contentKind(c.GetHeader("Content-Type"))
		if kind == "" {
			abortJSON(c, http.StatusUnsupportedMediaType, "unsupported_media_type",
				"send application/x-www-form-urlencoded or application/json")
			return
		}
		body, ok := readBody(c)
		if !ok {
			return
		}
		if kind == contentForm {
			f, err = formFields(string(body))
		} else {
			f, err = jsonFields(body)
		}
	}
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	req, err := parseRequest(f)
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	res := a.intake.Submit(c.Request.Context(), req)
	if res.Err != nil {
		a.writeError(c, res.Err, res.Detail)
		return
	}
	// The body every successful call gets, written without reflection:
	// it is the hottest answer of the service.
	var buf [64]byte
	out := append(buf[:0], `{"dispatch_id":`...)
	out = strconv.AppendInt(out, res.ID, 10)
	if res.Duplicate {
		out = append(out, `,"status":"duplicate"}`...)
	} else {
		out = append(out, `,"status":"accepted"}`...)
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", out)
}

// readBody reads at most MaxBody bytes; a larger body is a 413.
func readBody(c *gin.Context) ([]byte, bool) {
	if c.Request.ContentLength > MaxBody {
		abortJSON(c, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("the body is over %d bytes", MaxBody))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			abortJSON(c, http.StatusRequestEntityTooLarge, "payload_too_large", fmt.Sprintf("the body is over %d bytes", MaxBody))
			return nil, false
		}
		abortJSON(c, http.StatusBadRequest, "invalid_request", "the body could not be read")
		return nil, false
	}
	return body, true
}

// dispatchJSON is the dispatch resource (DESIGN.md 4.2).
type dispatchJSON struct {
	ID             int64        `json:"id"`
	State          string       `json:"state"`
	ContactID      int64        `json:"contact_id"`
	MessageID      int64        `json:"message_id"`
	CampaignID     *int64       `json:"campaign_id"`
	EventID        *int64       `json:"event_id"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	Channel        *string      `json:"channel"`
	ChannelID      *int64       `json:"channel_id"`
	Attempts       int          `json:"attempts"`
	CreatedAt      string       `json:"created_at"`
	UpdatedAt      string       `json:"updated_at"`
	NextAttemptAt  string       `json:"next_attempt_at,omitempty"`
	Trace          []TraceEntry `json:"trace"`
	Queue          *queueJSON   `json:"queue,omitempty"`
}

type queueJSON struct {
	ID            int64  `json:"id"`
	Status        string `json:"status"`
	Attempts      int    `json:"attempts"`
	ScheduledDate string `json:"scheduled_date,omitempty"`
	DateSent      string `json:"date_sent,omitempty"`
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func optID(v int64) *int64 {
	if v <= 0 {
		return nil
	}
	return &v
}

// toDispatchJSON renders a dispatch; the queue row, if any, is read live.
func (a *App) toDispatchJSON(ctx context.Context, d store.Dispatch) (dispatchJSON, error) {
	out := dispatchJSON{ID: d.ID, State: d.State, ContactID: d.ContactID, MessageID: d.MessageID,
		CampaignID: optID(d.CampaignID), EventID: optID(d.EventID), IdempotencyKey: d.IdempotencyKey,
		ChannelID: optID(d.ChannelID), Attempts: d.Attempts, CreatedAt: isoTime(d.CreatedAt), UpdatedAt: isoTime(d.UpdatedAt)}
	if d.Channel != "" {
		ch := d.Channel
		out.Channel = &ch
	}
	if d.State == store.Accepted {
		out.NextAttemptAt = isoTime(d.RunAt)
	}
	if err := json.Unmarshal(d.Trace, &out.Trace); err != nil || out.Trace == nil {
		out.Trace = []TraceEntry{}
	}
	if d.QueueID > 0 {
		rows, err := a.db.QueueRows(ctx, a.db, []int64{d.QueueID})
		if err != nil {
			return out, err
		}
		if q, ok := rows[d.QueueID]; ok {
			qj := &queueJSON{ID: q.ID, Status: q.Status, Attempts: q.Attempts}
			if q.ScheduledDate != nil {
				qj.ScheduledDate = isoTime(*q.ScheduledDate)
			}
			if q.DateSent != nil {
				qj.DateSent = isoTime(*q.DateSent)
			}
			out.Queue = qj
		} else {
			out.Queue = &queueJSON{ID: d.QueueID, Status: "deleted"}
		}
	}
	return out, nil
}

func pathID(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 || strings.HasPrefix(c.Param("id"), "+") {
		abortJSON(c, http.StatusBadRequest, "invalid_request", "the dispatch id must be a positive integer")
		return 0, false
	}
	return id, true
}

func (a *App) getDispatch(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	d, err := a.store.Get(c.Request.Context(), id)
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	out, err := a.toDispatchJSON(c.Request.Context(), d)
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	c.JSON(http.StatusOK, out)
}

func (a *App) retryDispatch(c *gin.Context) {
	id, ok := pathID(c)
	if !ok {
		return
	}
	d, err := a.store.Retry(c.Request.Context(), id, time.Now())
	if err != nil {
		detail := ""
		if errors.Is(err, store.ErrNotFailed) {
			detail = fmt.Sprintf("dispatch %d is %s; only failed dispatches can be retried", id, d.State)
		}
		a.writeError(c, err, detail)
		return
	}
	a.pipeline.Wake()
	out, err := a.toDispatchJSON(c.Request.Context(), d)
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	c.JSON(http.StatusOK, out)
}

// routeJSON is the answer of GET /v1/route.
type routeJSON struct {
	ContactID int64        `json:"contact_id"`
	MessageID int64        `json:"message_id"`
	Trace     []TraceEntry `json:"trace"`
	Decision  decisionJSON `json:"decision"`
}

type decisionJSON struct {
	Channel       *string `json:"channel"`
	ChannelID     *int64  `json:"channel_id,omitempty"`
	State         string  `json:"state"`
	ScheduledDate string  `json:"scheduled_date,omitempty"`
}

func toDecisionJSON(d RouteDecision) decisionJSON {
	out := decisionJSON{State: d.State, ChannelID: optID(d.ChannelID)}
	if d.Channel != "" {
		ch := d.Channel
		out.Channel = &ch
	}
	if !d.Scheduled.IsZero() {
		out.ScheduledDate = isoTime(d.Scheduled)
	}
	return out
}

// Preview computes what a dispatch of message for contact would do now,
// without sending or writing anything (GET /v1/route, `sidecar route`).
func (a *App) Preview(ctx context.Context, contactID, messageID int64) ([]TraceEntry, RouteDecision, error) {
	plans, err := a.plans(ctx, messageID, []int64{contactID}, time.Now().UTC())
	if err != nil {
		return nil, RouteDecision{}, err
	}
	p, ok := plans[contactID]
	if !ok {
		return nil, RouteDecision{}, errUnknownContact
	}
	tr, dec := Preview(p)
	return tr, dec, nil
}

// plans loads and decides for many contacts of one message.
func (a *App) plans(ctx context.Context, messageID int64, contactIDs []int64, now time.Time) (map[int64]Plan, error) {
	msgs, err := a.pipeline.loader.msgCache.get(ctx, a.db, []int64{messageID})
	if err != nil {
		return nil, err
	}
	msg, ok := msgs[messageID]
	if !ok {
		return nil, errUnknownMessage
	}
	if len(candidates(msg, a.senders)) == 0 {
		return nil, errNoCandidate
	}
	out := make(map[int64]Plan, len(contactIDs))
	for start := 0; start < len(contactIDs); start += 1000 {
		end := min(start+1000, len(contactIDs))
		wants := make([]want, 0, end-start)
		for _, id := range contactIDs[start:end] {
			wants = append(wants, want{ContactID: id, MessageID: messageID})
		}
		b, err := a.pipeline.loader.load(ctx, a.db, wants, now)
		if err != nil {
			return nil, err
		}
		for _, id := range contactIDs[start:end] {
			if _, ok := b.contacts[id]; !ok {
				continue
			}
			out[id] = Decide(a.pipeline.loader.facts(b, id, msg))
		}
	}
	return out, nil
}

func (a *App) routePreview(c *gin.Context) {
	f, err := formFields(c.Request.URL.RawQuery)
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	contactID, err := parseID(f, "contact_id", true, maxContactID)
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	messageID, err := parseID(f, "message_id", true, maxIntID)
	if err != nil {
		a.writeError(c, err, "")
		return
	}
	trace, dec, err := a.Preview(c.Request.Context(), contactID, messageID)
	if err != nil {
		a.writeError(c, err, detailFor(err, contactID, messageID))
		return
	}
	c.JSON(http.StatusOK, routeJSON{ContactID: contactID, MessageID: messageID, Trace: trace, Decision: toDecisionJSON(dec)})
}

func detailFor(err error, contactID, messageID int64) string {
	switch {
	case errors.Is(err, errUnknownContact):
		return fmt.Sprintf("contact %d does not exist", contactID)
	case errors.Is(err, errUnknownMessage):
		return fmt.Sprintf("marketing message %d does not exist", messageID)
	case errors.Is(err, errNoCandidate):
		return fmt.Sprintf("marketing message %d has no enabled channel with content and a configured sender", messageID)
	}
	return ""
}

// MaxSimulate is the largest contact list POST /v1/simulate takes.
const MaxSimulate = 10000

type simulateRequest struct {
	MessageID  int64   `json:"message_id"`
	ContactIDs []int64 `json:"contact_ids"`
}

type simulateDecision struct {
	ContactID     int64        `json:"contact_id"`
	Channel       *string      `json:"channel"`
	State         string       `json:"state"`
	ScheduledDate string       `json:"scheduled_date,omitempty"`
	Trace         []TraceEntry `json:"trace"`
}

type simulateJSON struct {
	MessageID       int64                     `json:"message_id"`
	Contacts        int                       `json:"contacts"`
	Channels        map[string]int            `json:"channels"`
	States          map[string]int            `json:"states"`
	Skips           map[string]int            `json:"skips"`
	SkipsByChannel  map[string]map[string]int `json:"skips_by_channel"`
	UnknownContacts []int64                   `json:"unknown_contacts"`
	Decisions       []simulateDecision        `json:"decisions"`
}

// simulate is POST /v1/simulate: a dry run for up to 10,000 contacts.
func (a *App) simulate(c *gin.Context) {
	if contentKind(c.GetHeader("Content-Type")) != contentJSON {
		abortJSON(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	var req simulateRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		abortJSON(c, http.StatusBadRequest, "invalid_request", "the body must be {\"message_id\":N,\"contact_ids\":[...]}")
		return
	}
	if req.MessageID <= 0 || req.MessageID > maxIntID {
		abortJSON(c, http.StatusBadRequest, "invalid_request", "message_id must be a positive integer")
		return
	}
	if len(req.ContactIDs) == 0 || len(req.ContactIDs) > MaxSimulate {
		abortJSON(c, http.StatusBadRequest, "invalid_request", fmt.Sprintf("contact_ids must hold 1 to %d ids", MaxSimulate))
		return
	}
	seen := map[int64]bool{}
	var ids []int64
	for _, id := range req.ContactIDs {
		if id <= 0 {
			abortJSON(c, http.StatusBadRequest, "invalid_request", "contact_ids must be positive integers")
			return
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	plans, err := a.plans(c.Request.Context(), req.MessageID, ids, time.Now().UTC())
	if err != nil {
		a.writeError(c, err, detailFor(err, 0, req.MessageID))
		return
	}
	out := simulateJSON{MessageID: req.MessageID, Contacts: len(ids), Channels: map[string]int{}, States: map[string]int{},
		Skips: map[string]int{}, SkipsByChannel: map[string]map[string]int{}, UnknownContacts: []int64{},
		Decisions: make([]simulateDecision, 0, len(ids))}
	for _, id := range ids {
		p, ok := plans[id]
		if !ok {
			out.UnknownContacts = append(out.UnknownContacts, id)
			continue
		}
		trace, d := Preview(p)
		for _, e := range trace {
			if e.Decision == DecisionSkipped {
				out.Skips[string(e.Reason)]++
				if out.SkipsByChannel[e.Channel] == nil {
					out.SkipsByChannel[e.Channel] = map[string]int{}
				}
				out.SkipsByChannel[e.Channel][string(e.Reason)]++
			}
		}
		out.States[d.State]++
		sd := simulateDecision{ContactID: id, State: d.State, Trace: trace}
		if d.Channel != "" {
			ch := d.Channel
			sd.Channel = &ch
			if d.State == "sent" {
				out.Channels[d.Channel]++
			}
		}
		if !d.Scheduled.IsZero() {
			sd.ScheduledDate = isoTime(d.Scheduled)
		}
		out.Decisions = append(out.Decisions, sd)
	}
	c.JSON(http.StatusOK, out)
}
