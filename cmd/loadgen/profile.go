package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// profile is one generated contact: its fields, channel preferences,
// do-not-contact entries and send history. It is a pure function of the
// seed and the contact id (see makeProfile), so the phases can regenerate
// any contact without reading the database.
type profile struct {
	ID                           int64
	Email, Mobile, Phone         string
	First, Last, City, Country   string
	WebPush, MobilePush          bool
	Rules                        []ruleRow
	DNC                          []dncRow
	EmailSent, SMSSent, PushSent []time.Duration // how long before the seeding time
}

// ruleRow is a lead_frequencyrules row.
type ruleRow struct {
	Channel   string
	Number    int // with Unit; ignored when Unit is ""
	Unit      string
	Preferred bool
	// PauseFrom and PauseTo are how long before the seeding time the pause
	// starts and ends (negative: after it); both zero: no pause.
	PauseFrom, PauseTo time.Duration
}

// dncRow is a lead_donotcontact row.
type dncRow struct {
	Channel string
	Reason  int // Mautic's DoNotContact: 1 unsubscribed, 2 bounced, 3 manual
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger",
		"Radia", "Niklaus", "Hedy", "Donald", "Karen", "Tim"}
	lastNames = []string{"Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
		"Dijkstra", "Perlman", "Wirth", "Lamarr", "Knuth", "Sparck Jones", "Berners-Lee"}
	cities    = []string{"Paris", "Berlin", "Lisbon", "Boston", "Austin", "Lyon", "Porto", "Denver", "Seattle", ""}
	countries = []string{"France", "Germany", "Portugal", "United States", ""}
	areaCodes = []string{"415", "650", "212", "312", "617", "206", "512", "303"}
)

// The dataset's proportions (documented in main.go's package comment).
const (
	pEmail      = 0.85 // has an email address
	pMobile     = 0.55 // has a mobile number
	pPhoneOnly  = 0.10 // of those without a mobile: a landline phone
	pWebPush    = 0.30 // has a web push subscription
	pMobilePush = 0.05 // has a mobile push subscription
	pRules      = 0.50 // has lead_frequencyrules rows
	pDNC        = 0.05 // has a lead_donotcontact row
	pEmailStats = 0.60 // has email sends in the last 30 days
	pSMSStats   = 0.25 // has SMS sends in the last 30 days
	pPushStats  = 0.10 // has web push sends in the last 30 days
)

// makeProfile generates contact id of the dataset seeded with seed.
func makeProfile(seed uint64, id int64) profile {
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	p := profile{ID: id,
		First:   firstNames[r.IntN(len(firstNames))],
		Last:    lastNames[r.IntN(len(lastNames))],
		City:    cities[r.IntN(len(cities))],
		Country: countries[r.IntN(len(countries))],
	}
	if r.Float64() < pEmail {
		p.Email = fmt.Sprintf("c%d@example.test", id)
	}
	switch {
	case r.Float64() < pMobile:
		p.Mobile = fmt.Sprintf("+1%s555%04d", areaCodes[r.IntN(len(areaCodes))], id%10000)
	case r.Float64() < pPhoneOnly:
		p.Phone = fmt.Sprintf("+1%s555%04d", areaCodes[r.IntN(len(areaCodes))], (id+5000)%10000)
	}
	p.WebPush = r.Float64() < pWebPush
	p.MobilePush = r.Float64() < pMobilePush
	if r.Float64() < pRules {
		p.Rules = makeRules(r)
	}
	if r.Float64() < pDNC {
		d := dncRow{Channel: "email", Reason: 1}
		switch x := r.Float64(); {
		case x < 0.25:
			d.Channel = "sms"
		case x < 0.30:
			d.Channel = "notification"
		}
		switch x := r.Float64(); {
		case x < 0.30:
			d.Reason = 2
		case x < 0.40:
			d.Reason = 3
		}
		p.DNC = append(p.DNC, d)
	}
	p.EmailSent = history(r, pEmailStats, 8)
	p.SMSSent = history(r, pSMSStats, 4)
	p.PushSent = history(r, pPushStats, 3)
	return p
}

// makeRules returns an email and/or SMS rule: preferred flags, limits per
// DAY, WEEK or MONTH, a few zero limits, active and past pauses.
func makeRules(r *rand.Rand) []ruleRow {
	var rules []ruleRow
	if r.Float64() < 0.8 {
		rules = append(rules, ruleRow{Channel: "email"})
	}
	if len(rules) == 0 || r.Float64() < 0.6 {
		rules = append(rules, ruleRow{Channel: "sms"})
	}
	if r.Float64() < 0.6 {
		rules[r.IntN(len(rules))].Preferred = true
	}
	for i := range rules {
		rule := &rules[i]
		if r.Float64() < 0.55 {
			switch x := r.Float64(); {
			case x < 0.40:
				rule.Unit, rule.Number = "DAY", 1+r.IntN(3)
			case x < 0.75:
				rule.Unit, rule.Number = "WEEK", 1+r.IntN(7)
			default:
				rule.Unit, rule.Number = "MONTH", 2+r.IntN(19)
			}
			if r.Float64() < 0.02 {
				rule.Number = 0 // "never": always reached
			}
		}
		switch x := r.Float64(); {
		case x < 0.04: // paused now, for a few more days
			rule.PauseFrom = 5 * 24 * time.Hour
			rule.PauseTo = -time.Duration(2+r.IntN(28)) * 24 * time.Hour
		case x < 0.07: // a pause that ended
			rule.PauseFrom = 40 * 24 * time.Hour
			rule.PauseTo = 20 * 24 * time.Hour
		}
	}
	return rules
}

// history returns, with probability p, 1 to max send times within the last
// 30 days.
func history(r *rand.Rand, p float64, max int) []time.Duration {
	if r.Float64() >= p {
		return nil
	}
	out := make([]time.Duration, 1+r.IntN(max))
	for i := range out {
		out[i] = time.Duration(r.Int64N(int64(30 * 24 * time.Hour)))
	}
	return out
}

// queueChannel picks the channel of the k-th queue row of a contact
// (k = 0, 1, 2): the channels the contact has an address for first, so most
// rows are sendable, as rows Mautic queued are.
func queueChannel(p profile, k int) string {
	var chans []string
	if p.Email != "" {
		chans = append(chans, "email")
	}
	if p.Mobile != "" || p.Phone != "" {
		chans = append(chans, "sms")
	}
	if p.WebPush {
		chans = append(chans, "notification")
	}
	for _, c := range []string{"email", "sms", "notification"} {
		found := false
		for _, d := range chans {
			found = found || c == d
		}
		if !found {
			chans = append(chans, c)
		}
	}
	return chans[k%len(chans)]
}
