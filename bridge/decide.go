package bridge

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/mautic-mm/sidecar/mautic"
)

// Decision is what happened to a channel in a trace entry (DESIGN.md 4.2).
type Decision string

// The decisions.
const (
	DecisionSkipped         Decision = "skipped"
	DecisionSent            Decision = "sent"
	DecisionQueued          Decision = "queued"
	DecisionFailedPermanent Decision = "failed_permanent"
	DecisionFailedTransient Decision = "failed_transient"
)

// Reason says why a channel was skipped or failed (DESIGN.md section 5).
type Reason string

// The reasons.
const (
	ReasonNone                       Reason = ""
	ReasonDNC                        Reason = "dnc"
	ReasonPaused                     Reason = "paused"
	ReasonFrequency                  Reason = "frequency"
	ReasonNoAddress                  Reason = "no_address"
	ReasonNoContent                  Reason = "no_content"
	ReasonNoSender                   Reason = "no_sender"
	ReasonProviderPermanent          Reason = "provider_permanent"
	ReasonProviderTransient          Reason = "provider_transient"
	ReasonProviderTransientExhausted Reason = "provider_transient_exhausted"
)

// TraceEntry is one step of a dispatch's trace.
type TraceEntry struct {
	Channel  string   `json:"channel"`
	Decision Decision `json:"decision"`
	Reason   Reason   `json:"reason,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// Facts is everything the routing decision needs about one contact and one
// marketing message, loaded beforehand. Decide does no I/O.
type Facts struct {
	Now time.Time
	// Channels are the message's enabled message_channels rows, ORDER BY id,
	// each with what is known about it for this contact.
	Channels []ChannelFacts
	// Rules are the contact's lead_frequencyrules rows, ORDER BY id.
	Rules []mautic.FrequencyRule
	// DNC are the contact's lead_donotcontact rows.
	DNC []mautic.DNC
}

// ChannelFacts is one message channel and the contact's state on it.
type ChannelFacts struct {
	mautic.MessageChannel
	// HasSender tells whether the channel has a configured sender.
	HasSender bool
	// Content tells whether the content row exists and is published.
	Content ContentState
	// Address tells whether the contact can be reached on the channel.
	Address bool
	// Frequency is the contact's frequency state on the channel.
	Frequency mautic.FrequencyStatus
}

// ContentState is the state of a channel's content row.
type ContentState struct {
	OK     bool
	Detail string // why not, e.g. "email content 4 is not published"
}

// Step is one candidate channel in routing order and whether it may be
// tried now.
type Step struct {
	Channel   string
	ChannelID int64
	// Skip is the first reason that applies, ReasonNone when the channel
	// may be tried.
	Skip Reason
	// Paused, PauseTo, Frequency: what item 6 needs to queue on this channel.
	Paused    bool
	PauseTo   time.Time
	Frequency mautic.FrequencyStatus
	// What the detail text is made of (rendered only for traces).
	dnc            mautic.DNCReason
	contentProblem string
}

// Eligible reports whether the channel may be tried.
func (s Step) Eligible() bool { return s.Skip == ReasonNone }

// Detail explains the skip in words, for the trace.
func (s Step) Detail() string {
	switch s.Skip {
	case ReasonDNC:
		return "do not contact: reason " + strconv.Itoa(int(s.dnc)) + " (" + s.dnc.String() + ")"
	case ReasonNoContent:
		if s.contentProblem != "" {
			return s.contentProblem
		}
		return s.Channel + " content " + strconv.FormatInt(s.ChannelID, 10) + " is missing"
	case ReasonNoAddress:
		return noAddressDetail(s.Channel)
	case ReasonPaused:
		return "paused until " + s.PauseTo.UTC().Format("2006-01-02 15:04:05") + " UTC"
	case ReasonFrequency:
		return FrequencyDetail(s.Frequency)
	}
	return ""
}

// LiftsAt returns when a paused or frequency-blocked channel may be used
// again (DESIGN.md 6 item 6): pause_to_date + 1 second; the frequency lift
// time; the later of the two when both apply. ok is false when the block
// never lifts (a limit of 0) or the step is not blocked that way.
func (s Step) LiftsAt() (time.Time, bool) {
	var at time.Time
	if s.Paused {
		at = s.PauseTo.Add(time.Second)
	}
	if s.Frequency.Reached {
		if s.Frequency.LiftsAt.IsZero() {
			return time.Time{}, false
		}
		if s.Frequency.LiftsAt.After(at) {
			at = s.Frequency.LiftsAt
		}
	}
	if !s.Paused && !s.Frequency.Reached {
		return time.Time{}, false
	}
	return at, true
}

// Plan is the routing decision for one contact: the channels that were not
// candidates (traced, never tried) and the candidates in routing order.
type Plan struct {
	Excluded []TraceEntry
	Steps    []Step
}

// maxChannels bounds the small fixed-size work arrays of Decide; a message
// with more channels (never seen in practice) takes the slower path.
const maxChannels = 16

// Decide computes the routing plan (DESIGN.md section 6 items 1 to 4). It is
// the hot path of routing: no maps, no formatting, one allocation.
func Decide(f Facts) Plan {
	var p Plan
	if len(f.Channels) > maxChannels {
		return decideSlow(f)
	}
	// Candidates (item 1) and the contact's rule for each (highest id wins).
	var cand [maxChannels]int
	var rule [maxChannels]int // index in f.Rules, -1 for none
	nc := 0
	for i := range f.Channels {
		c := &f.Channels[i]
		switch {
		case c.ChannelID <= 0:
			p.Excluded = append(p.Excluded, TraceEntry{Channel: c.Channel, Decision: DecisionSkipped, Reason: ReasonNoContent,
				Detail: "no content chosen for " + c.Channel + " in the message"})
		case !c.HasSender:
			p.Excluded = append(p.Excluded, TraceEntry{Channel: c.Channel, Decision: DecisionSkipped, Reason: ReasonNoSender,
				Detail: "no sender is configured for " + c.Channel})
		default:
			r := -1
			for k := range f.Rules {
				if f.Rules[k].Channel == c.Channel && (r < 0 || f.Rules[k].ID >= f.Rules[r].ID) {
					r = k
				}
			}
			cand[nc], rule[nc] = i, r
			nc++
		}
	}
	// Order (item 2): ruled candidates sorted, then the others in message
	// order. Insertion sort: a handful of elements.
	var order [maxChannels]int // positions in cand
	n := 0
	for k := 0; k < nc; k++ {
		if rule[k] < 0 {
			continue
		}
		j := n
		for j > 0 && ruleBefore(&f.Rules[rule[k]], &f.Rules[rule[order[j-1]]]) {
			order[j] = order[j-1]
			j--
		}
		order[j] = k
		n++
	}
	for k := 0; k < nc; k++ {
		if rule[k] < 0 {
			order[n] = k
			n++
		}
	}
	// Skips (items 3 and 4).
	p.Steps = make([]Step, n)
	for o := 0; o < n; o++ {
		k := order[o]
		c := &f.Channels[cand[k]]
		s := &p.Steps[o]
		s.Channel, s.ChannelID, s.Frequency = c.Channel, c.ChannelID, c.Frequency
		if r := rule[k]; r >= 0 && f.Rules[r].PausedAt(f.Now) {
			s.Paused, s.PauseTo = true, *f.Rules[r].PauseTo
		}
		s.judge(c, f.DNC)
	}
	return p
}

// judge sets the step's skip reason, the first that applies in DESIGN.md
// 6 item 3's order: a DNC row for the channel, no usable content, no
// address, a pause, the frequency limit. s.Paused and s.Frequency are set.
func (s *Step) judge(c *ChannelFacts, dnc []mautic.DNC) {
	for d := range dnc {
		if dnc[d].Channel == c.Channel {
			s.Skip, s.dnc = ReasonDNC, dnc[d].Reason
			return
		}
	}
	switch {
	case !c.Content.OK:
		s.Skip, s.contentProblem = ReasonNoContent, c.Content.Detail
	case !c.Address:
		s.Skip = ReasonNoAddress
	case s.Paused:
		s.Skip = ReasonPaused
	case s.Frequency.Reached:
		s.Skip = ReasonFrequency
	}
}

// ruleBefore is the order of DESIGN.md 6 item 2 between two rules:
// preferred first, then larger monthly allowance (DAY×30, WEEK×4, MONTH×1;
// a rule without both number and time is unlimited), then rule id.
func ruleBefore(a, b *mautic.FrequencyRule) bool {
	if a.Preferred != b.Preferred {
		return a.Preferred
	}
	if aa, ba := allowance(*a), allowance(*b); aa != ba {
		return aa > ba
	}
	return a.ID < b.ID
}

// decideSlow is Decide for messages with very many channels.
func decideSlow(f Facts) Plan {
	var p Plan
	var cands []mautic.MessageChannel
	byChannel := map[string]*ChannelFacts{}
	for i := range f.Channels {
		c := &f.Channels[i]
		byChannel[c.Channel] = c
		switch {
		case c.ChannelID <= 0:
			p.Excluded = append(p.Excluded, TraceEntry{Channel: c.Channel, Decision: DecisionSkipped, Reason: ReasonNoContent,
				Detail: "no content chosen for " + c.Channel + " in the message"})
		case !c.HasSender:
			p.Excluded = append(p.Excluded, TraceEntry{Channel: c.Channel, Decision: DecisionSkipped, Reason: ReasonNoSender,
				Detail: "no sender is configured for " + c.Channel})
		default:
			cands = append(cands, c.MessageChannel)
		}
	}
	rules := map[string]mautic.FrequencyRule{}
	for _, r := range mautic.EffectiveRules(f.Rules) {
		rules[r.Channel] = r
	}
	for _, mc := range Order(cands, f.Rules) {
		c := byChannel[mc.Channel]
		s := Step{Channel: c.Channel, ChannelID: c.ChannelID, Frequency: c.Frequency}
		if r, ok := rules[c.Channel]; ok && r.PausedAt(f.Now) {
			s.Paused, s.PauseTo = true, *r.PauseTo
		}
		s.judge(c, f.DNC)
		p.Steps = append(p.Steps, s)
	}
	return p
}

// FrequencyDetail explains a frequency decision: "1 of 1 per DAY".
func FrequencyDetail(st mautic.FrequencyStatus) string {
	if st.Limit.Number <= 0 {
		return "limit of 0 per " + string(st.Limit.Unit) + ": never sent on this channel"
	}
	d := strconv.Itoa(st.Count) + " of " + strconv.Itoa(st.Limit.Number) + " per " + string(st.Limit.Unit)
	if st.Source == mautic.SourceDefault {
		d += " (global default)"
	}
	return d
}

func noAddressDetail(channel string) string {
	switch channel {
	case "email":
		return "the contact has no email address"
	case "sms":
		return "the contact has neither mobile nor phone"
	case "notification":
		return "the contact has no web push subscription (push_ids)"
	case "mobile_notification":
		return "the contact has no mobile push subscription (push_ids)"
	case "tweet":
		return "the contact has no twitter handle"
	}
	return "the contact has no address on " + channel
}

// Order returns the candidates in routing order (DESIGN.md 6 item 2): first
// the channels with a rule of the contact (highest id per channel), sorted by
// preferred first, then larger monthly allowance (DAY×30, WEEK×4, MONTH×1; a
// rule without both number and time is unlimited), then rule id; then the
// other candidates in message order. Channels outside cands never appear.
func Order(cands []mautic.MessageChannel, rules []mautic.FrequencyRule) []mautic.MessageChannel {
	byChannel := make(map[string]mautic.MessageChannel, len(cands))
	for _, c := range cands {
		byChannel[c.Channel] = c
	}
	var ruled []mautic.FrequencyRule
	for _, r := range mautic.EffectiveRules(rules) {
		if _, ok := byChannel[r.Channel]; ok {
			ruled = append(ruled, r)
		}
	}
	sort.SliceStable(ruled, func(i, j int) bool { return ruleBefore(&ruled[i], &ruled[j]) })
	out := make([]mautic.MessageChannel, 0, len(cands))
	used := map[string]bool{}
	for _, r := range ruled {
		out = append(out, byChannel[r.Channel])
		used[r.Channel] = true
	}
	for _, c := range cands {
		if !used[c.Channel] {
			out = append(out, c)
		}
	}
	return out
}

func allowance(r mautic.FrequencyRule) int {
	if !r.Numeric() {
		return math.MaxInt
	}
	return r.Unit.PerMonth(*r.Number)
}

// QueueTarget returns the step to queue on when nothing was sent (DESIGN.md
// 6 item 6): the first step, in routing order, that was skipped as paused or
// frequency and whose block lifts, with the moment it lifts.
func QueueTarget(steps []Step) (Step, time.Time, bool) {
	for _, s := range steps {
		if s.Skip != ReasonPaused && s.Skip != ReasonFrequency {
			continue
		}
		if at, ok := s.LiftsAt(); ok {
			return s, at, true
		}
	}
	return Step{}, time.Time{}, false
}

// RouteDecision is what a dispatch would do now, without sending.
type RouteDecision struct {
	Channel   string    `json:"channel"`
	ChannelID int64     `json:"channel_id,omitempty"`
	State     string    `json:"state"`
	Scheduled time.Time `json:"scheduled_date,omitzero"`
}

// Preview turns a plan into the trace and decision of GET /v1/route: the
// first eligible channel would be sent; else the dispatch would be queued on
// the queue target; else it would fail.
func Preview(p Plan) ([]TraceEntry, RouteDecision) {
	trace := append([]TraceEntry(nil), p.Excluded...)
	for _, s := range p.Steps {
		if s.Eligible() {
			trace = append(trace, TraceEntry{Channel: s.Channel, Decision: DecisionSent})
			return trace, RouteDecision{Channel: s.Channel, ChannelID: s.ChannelID, State: "sent"}
		}
		trace = append(trace, s.skipEntry())
	}
	if t, at, ok := QueueTarget(p.Steps); ok {
		trace = append(trace, TraceEntry{Channel: t.Channel, Decision: DecisionQueued,
			Detail: "until " + at.UTC().Format("2006-01-02 15:04:05") + " UTC"})
		return trace, RouteDecision{Channel: t.Channel, ChannelID: t.ChannelID, State: "queued", Scheduled: at.UTC()}
	}
	return trace, RouteDecision{State: "failed"}
}

func (s Step) skipEntry() TraceEntry {
	return TraceEntry{Channel: s.Channel, Decision: DecisionSkipped, Reason: s.Skip, Detail: s.Detail()}
}
