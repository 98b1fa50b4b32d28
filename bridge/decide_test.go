package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/mautic"
)

var now0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// facts builds routing facts where every channel is sendable unless a test
// changes it.
func facts(chans ...string) Facts {
	f := Facts{Now: now0}
	for i, c := range chans {
		f.Channels = append(f.Channels, ChannelFacts{MessageChannel: mautic.MessageChannel{ID: int64(i + 1), Channel: c, ChannelID: int64(10 + i)},
			HasSender: true, Content: ContentState{OK: true}, Address: true})
	}
	return f
}

// ch returns the facts of channel name.
func (f *Facts) ch(name string) *ChannelFacts {
	for i := range f.Channels {
		if f.Channels[i].Channel == name {
			return &f.Channels[i]
		}
	}
	panic("no channel " + name)
}

var ruleID int64

func rule(ch string, preferred bool, n int, u mautic.Unit) mautic.FrequencyRule {
	ruleID++
	r := mautic.FrequencyRule{ID: ruleID, ContactID: 1, Channel: ch, Preferred: preferred}
	if u != "" {
		nn := n
		r.Number, r.Unit = &nn, u
	}
	return r
}

func dnc(ch string, reason mautic.DNCReason) mautic.DNC {
	return mautic.DNC{ContactID: 1, Channel: ch, Reason: reason}
}

func order(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Channel)
	}
	return out
}

// tries is the order in which channels would actually be tried.
func tries(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		if s.Eligible() {
			out = append(out, s.Channel)
		}
	}
	return out
}

func skips(p Plan) map[string]Reason {
	out := map[string]Reason{}
	for _, s := range p.Steps {
		if !s.Eligible() {
			out[s.Channel] = s.Skip
		}
	}
	return out
}

func paused(ch string, preferred bool, from, to time.Time) mautic.FrequencyRule {
	r := rule(ch, preferred, 0, "")
	r.PauseFrom, r.PauseTo = &from, &to
	return r
}

// TestDecideMauticCases covers mautic-reference.md 10.1 to 10.4, adapted to
// DESIGN.md section 6 (pause honoured, channels outside the message ignored).
func TestDecideMauticCases(t *testing.T) {
	pauseFrom, pauseTo := now0.Add(-time.Hour), now0.Add(24*time.Hour)
	cases := []struct {
		name      string
		chans     []string
		rules     []mautic.FrequencyRule
		dnc       []mautic.DNC
		wantOrder []string
		wantTries []string
		wantSkips map[string]Reason
	}{
		// 10.1 testChannelsArePrioritized, contact 1: rules sms then email.
		{"10.1 contact 1", []string{"email", "sms", "notification"},
			[]mautic.FrequencyRule{rule("sms", false, 0, ""), rule("email", false, 0, "")}, nil,
			[]string{"sms", "email", "notification"}, []string{"sms", "email", "notification"}, map[string]Reason{}},
		// 10.1 contact 2: email ok, sms DNC unsubscribed.
		{"10.1 contact 2", []string{"email", "sms", "notification"},
			[]mautic.FrequencyRule{rule("email", false, 0, ""), rule("sms", false, 0, "")}, []mautic.DNC{dnc("sms", 1)},
			[]string{"email", "sms", "notification"}, []string{"email", "notification"}, map[string]Reason{"sms": ReasonDNC}},
		// 10.3 testCorrectChannelIsUsed.
		{"10.3 contact 1 gets sms", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("sms", false, 0, ""), rule("email", false, 0, "")}, nil,
			[]string{"sms", "email"}, []string{"sms", "email"}, map[string]Reason{}},
		{"10.3 contact 2 gets email", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("email", false, 0, ""), rule("sms", false, 0, "")}, []mautic.DNC{dnc("sms", 1)},
			[]string{"email", "sms"}, []string{"email"}, map[string]Reason{"sms": ReasonDNC}},
		// 10.4 A to I.
		{"10.4 A", []string{"email", "sms"}, []mautic.FrequencyRule{rule("email", false, 0, ""), rule("sms", true, 0, "")}, nil,
			[]string{"sms", "email"}, []string{"sms", "email"}, map[string]Reason{}},
		{"10.4 B", []string{"email", "sms"}, []mautic.FrequencyRule{rule("email", true, 0, ""), rule("sms", false, 0, "")}, nil,
			[]string{"email", "sms"}, []string{"email", "sms"}, map[string]Reason{}},
		{"10.4 C: 1/DAY (30 a month) before 5/WEEK (20)", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("email", false, 5, mautic.Week), rule("sms", false, 1, mautic.Day)}, nil,
			[]string{"sms", "email"}, []string{"sms", "email"}, map[string]Reason{}},
		{"10.4 D", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("email", false, 2, mautic.Day), rule("sms", false, 3, mautic.Day)}, nil,
			[]string{"sms", "email"}, []string{"sms", "email"}, map[string]Reason{}},
		{"10.4 E: the pause is honoured", []string{"email", "sms"},
			[]mautic.FrequencyRule{paused("email", true, pauseFrom, pauseTo), rule("sms", false, 0, "")}, nil,
			[]string{"email", "sms"}, []string{"sms"}, map[string]Reason{"email": ReasonPaused}},
		{"10.4 F", []string{"email", "sms"}, []mautic.FrequencyRule{rule("email", false, 0, ""), rule("sms", true, 0, "")},
			[]mautic.DNC{dnc("sms", 1)}, []string{"sms", "email"}, []string{"email"}, map[string]Reason{"sms": ReasonDNC}},
		{"10.4 G: DNC on email without rules", []string{"email", "sms"}, nil, []mautic.DNC{dnc("email", 1)},
			[]string{"email", "sms"}, []string{"sms"}, map[string]Reason{"email": ReasonDNC}},
		{"10.4 H: DNC on a channel outside the message", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("email", true, 0, ""), rule("sms", false, 0, "")}, []mautic.DNC{dnc("notification", 3)},
			[]string{"email", "sms"}, []string{"email", "sms"}, map[string]Reason{}},
		{"10.4 I: no limit before 1/DAY", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("email", false, 0, ""), rule("sms", false, 1, mautic.Day)}, nil,
			[]string{"email", "sms"}, []string{"email", "sms"}, map[string]Reason{}},
		// B1/B2: a rule for a channel outside the message takes no place.
		{"rules outside the message are ignored", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("tweet", true, 0, ""), rule("notification", true, 0, ""), rule("sms", false, 0, "")}, nil,
			[]string{"sms", "email"}, []string{"sms", "email"}, map[string]Reason{}},
		{"DNC of any reason, even 0, skips", []string{"email", "sms"}, nil, []mautic.DNC{dnc("email", 0)},
			[]string{"email", "sms"}, []string{"sms"}, map[string]Reason{"email": ReasonDNC}},
		{"only the highest-id rule of a channel counts", []string{"email", "sms"},
			[]mautic.FrequencyRule{rule("sms", true, 0, ""), rule("email", false, 0, ""), rule("sms", false, 1, mautic.Month)}, nil,
			[]string{"email", "sms"}, []string{"email", "sms"}, map[string]Reason{}},
		{"no rules: message order", []string{"sms", "notification", "email"}, nil, nil,
			[]string{"sms", "notification", "email"}, []string{"sms", "notification", "email"}, map[string]Reason{}},
		{"equal allowance: rule id decides", []string{"email", "sms", "tweet"},
			[]mautic.FrequencyRule{rule("tweet", false, 1, mautic.Week), rule("email", false, 4, mautic.Month)}, nil,
			[]string{"tweet", "email", "sms"}, []string{"tweet", "email", "sms"}, map[string]Reason{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := facts(tc.chans...)
			f.Rules, f.DNC = tc.rules, tc.dnc
			p := Decide(f)
			require.Equal(t, tc.wantOrder, order(p), "routing order")
			require.Equal(t, tc.wantTries, tries(p), "channels that would be tried")
			require.Equal(t, tc.wantSkips, skips(p))
		})
	}
}

// TestDecideLeadTestPreferredChannels is mautic-reference.md 10.2: with the
// pause honoured and DNC skipped, the channels tried are exactly Mautic's
// expected order without the paused and DNC channels.
func TestDecideLeadTestPreferredChannels(t *testing.T) {
	f := facts("channel1", "channel2", "channel3", "channel4", "channel5", "channel6")
	from, to := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Rules = []mautic.FrequencyRule{paused("channel1", false, from, to), rule("channel2", true, 0, ""), rule("channel3", false, 7, mautic.Day),
		rule("channel4", false, 0, ""), rule("channel5", false, 10, mautic.Week), rule("channel6", false, 10, mautic.Month)}
	f.DNC = []mautic.DNC{dnc("channel4", 1)}
	p := Decide(f)
	require.Equal(t, []string{"channel2", "channel1", "channel4", "channel3", "channel5", "channel6"}, order(p))
	require.Equal(t, []string{"channel2", "channel3", "channel5", "channel6"}, tries(p))
	require.Equal(t, map[string]Reason{"channel1": ReasonPaused, "channel4": ReasonDNC}, skips(p))
}

func TestDecideSkipReasons(t *testing.T) {
	full := mautic.FrequencyStatus{Source: mautic.SourceRule, Limit: mautic.Limit{Number: 1, Unit: mautic.Day}, Count: 1, Reached: true,
		LiftsAt: now0.Add(3 * time.Hour)}
	t.Run("excluded rows are traced, never tried", func(t *testing.T) {
		f := facts("email", "sms", "tweet")
		f.Channels[1].ChannelID = 0
		f.ch("tweet").HasSender = false
		p := Decide(f)
		require.Equal(t, []string{"email"}, order(p))
		require.Equal(t, []TraceEntry{
			{Channel: "sms", Decision: DecisionSkipped, Reason: ReasonNoContent, Detail: "no content chosen for sms in the message"},
			{Channel: "tweet", Decision: DecisionSkipped, Reason: ReasonNoSender, Detail: "no sender is configured for tweet"},
		}, p.Excluded)
	})
	t.Run("first reason wins: dnc, no_content, no_address, paused, frequency", func(t *testing.T) {
		f := facts("email")
		f.DNC = []mautic.DNC{dnc("email", 2)}
		f.ch("email").Content = ContentState{Detail: "email content 10 is not published"}
		f.ch("email").Address = false
		f.Rules = []mautic.FrequencyRule{paused("email", false, now0.Add(-time.Hour), now0.Add(time.Hour))}
		f.ch("email").Frequency = full
		steps := []Reason{ReasonDNC, ReasonNoContent, ReasonNoAddress, ReasonPaused, ReasonFrequency, ReasonNone}
		for _, want := range steps {
			p := Decide(f)
			require.Equal(t, want, p.Steps[0].Skip)
			switch want {
			case ReasonDNC:
				require.Equal(t, "do not contact: reason 2 (bounced)", p.Steps[0].Detail())
				f.DNC = nil
			case ReasonNoContent:
				require.Equal(t, "email content 10 is not published", p.Steps[0].Detail())
				f.ch("email").Content = ContentState{OK: true}
			case ReasonNoAddress:
				require.Equal(t, "the contact has no email address", p.Steps[0].Detail())
				f.ch("email").Address = true
			case ReasonPaused:
				f.Rules = nil
			case ReasonFrequency:
				require.Equal(t, "1 of 1 per DAY", p.Steps[0].Detail())
				f.ch("email").Frequency = mautic.FrequencyStatus{}
			}
		}
	})
	t.Run("pause window edges", func(t *testing.T) {
		f := facts("email")
		f.Rules = []mautic.FrequencyRule{paused("email", false, now0, now0)}
		require.Equal(t, ReasonPaused, Decide(f).Steps[0].Skip, "both ends inclusive")
		f.Rules = []mautic.FrequencyRule{paused("email", false, now0.Add(time.Second), now0.Add(time.Hour))}
		require.Equal(t, ReasonNone, Decide(f).Steps[0].Skip, "not yet")
		r := rule("email", false, 0, "")
		from := now0.Add(-time.Hour)
		r.PauseFrom = &from
		f.Rules = []mautic.FrequencyRule{r}
		require.Equal(t, ReasonNone, Decide(f).Steps[0].Skip, "a pause needs both dates")
	})
	t.Run("default limit detail", func(t *testing.T) {
		f := facts("email")
		f.ch("email").Frequency = mautic.FrequencyStatus{Source: mautic.SourceDefault, Limit: mautic.Limit{Number: 3, Unit: mautic.Week}, Count: 4, Reached: true}
		require.Equal(t, "4 of 3 per WEEK (global default)", Decide(f).Steps[0].Detail())
	})
}

func TestQueueTarget(t *testing.T) {
	lift := now0.Add(5 * time.Hour)
	pauseEnd := now0.Add(48 * time.Hour)
	reached := mautic.FrequencyStatus{Source: mautic.SourceRule, Limit: mautic.Limit{Number: 1, Unit: mautic.Day}, Count: 1, Reached: true, LiftsAt: lift}
	zero := mautic.FrequencyStatus{Source: mautic.SourceRule, Limit: mautic.Limit{Number: 0, Unit: mautic.Day}, Reached: true}
	cases := []struct {
		name    string
		steps   []Step
		want    string
		wantAt  time.Time
		wantNil bool
	}{
		{"frequency lifts at the oldest counted send + 1 unit", []Step{{Channel: "email", Skip: ReasonFrequency, Frequency: reached}}, "email", lift, false},
		{"pause lifts one second after its end", []Step{{Channel: "sms", Skip: ReasonPaused, Paused: true, PauseTo: pauseEnd}}, "sms", pauseEnd.Add(time.Second), false},
		{"paused and over the limit: the later", []Step{{Channel: "sms", Skip: ReasonPaused, Paused: true, PauseTo: now0, Frequency: reached}}, "sms", lift, false},
		{"first blocked channel in order", []Step{{Channel: "email", Skip: ReasonDNC}, {Channel: "sms", Skip: ReasonFrequency, Frequency: reached},
			{Channel: "push", Skip: ReasonPaused, Paused: true, PauseTo: now0}}, "sms", lift, false},
		{"a limit of 0 never lifts: next blocked channel", []Step{{Channel: "email", Skip: ReasonFrequency, Frequency: zero},
			{Channel: "sms", Skip: ReasonPaused, Paused: true, PauseTo: pauseEnd}}, "sms", pauseEnd.Add(time.Second), false},
		{"a limit of 0 alone: nothing to queue on", []Step{{Channel: "email", Skip: ReasonFrequency, Frequency: zero}}, "", time.Time{}, true},
		{"other reasons never queue", []Step{{Channel: "email", Skip: ReasonNoAddress}, {Channel: "sms", Skip: ReasonDNC}}, "", time.Time{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, at, ok := QueueTarget(tc.steps)
			require.Equal(t, !tc.wantNil, ok)
			require.Equal(t, tc.want, s.Channel)
			require.Equal(t, tc.wantAt, at)
		})
	}
}

func TestPreview(t *testing.T) {
	f := facts("email", "sms")
	f.DNC = []mautic.DNC{dnc("email", 1)}
	trace, d := Preview(Decide(f))
	require.Equal(t, RouteDecision{Channel: "sms", ChannelID: 11, State: "sent"}, d)
	require.Equal(t, []TraceEntry{{Channel: "email", Decision: DecisionSkipped, Reason: ReasonDNC, Detail: "do not contact: reason 1 (unsubscribed)"},
		{Channel: "sms", Decision: DecisionSent}}, trace)

	f.ch("sms").Frequency = mautic.FrequencyStatus{Source: mautic.SourceRule, Limit: mautic.Limit{Number: 1, Unit: mautic.Day}, Count: 1,
		Reached: true, LiftsAt: now0.Add(time.Hour)}
	trace, d = Preview(Decide(f))
	require.Equal(t, "queued", d.State)
	require.Equal(t, now0.Add(time.Hour), d.Scheduled)
	require.Equal(t, DecisionQueued, trace[len(trace)-1].Decision)

	f.ch("sms").Address = false
	_, d = Preview(Decide(f))
	require.Equal(t, RouteDecision{State: "failed"}, d)
}

func TestBackoffDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second, 10: time.Minute} {
		for i := 0; i < 50; i++ {
			d := backoffDelay(n, 2*time.Second, time.Minute)
			require.GreaterOrEqual(t, d, want/2, "try %d", n)
			require.LessOrEqual(t, d, want, "try %d", n)
		}
	}
}

// BenchmarkDecide measures the pure routing decision for a contact with
// rules, DNC and frequency state on a five-channel message.
func BenchmarkDecide(b *testing.B) {
	f := facts("email", "sms", "notification", "mobile_notification", "tweet")
	f.Rules = []mautic.FrequencyRule{rule("email", true, 2, mautic.Day), rule("sms", false, 5, mautic.Week), rule("tweet", false, 0, "")}
	f.DNC = []mautic.DNC{dnc("mobile_notification", 1)}
	f.ch("email").Frequency = mautic.FrequencyStatus{Source: mautic.SourceRule, Limit: mautic.Limit{Number: 2, Unit: mautic.Day}, Count: 2, Reached: true, LiftsAt: now0}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := Decide(f)
		if len(p.Steps) != 5 {
			b.Fatal(len(p.Steps))
		}
	}
}
