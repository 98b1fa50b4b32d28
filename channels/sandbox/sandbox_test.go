package sandbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/channels"
	"github.com/mautic-mm/sidecar/channels/channelstest"
	"github.com/mautic-mm/sidecar/channels/push"
	"github.com/mautic-mm/sidecar/channels/sms"
	"github.com/mautic-mm/sidecar/channels/tweet"
	"github.com/mautic-mm/sidecar/channels/webhook"
)

func str(s string) *string { return &s }

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	require.True(t, strings.HasPrefix(s.URL(), "http://127.0.0.1:"), s.URL())
	return s
}

var contact = channels.Contact{ID: 7, Fields: map[string]*string{"firstname": str("Ada")}}

func smsMessage(to string) channels.Message {
	return channels.Message{Key: "k-" + to, Channel: channels.SMS, Contact: contact, To: to,
		SMS: &channels.SMSContent{ID: 1, Message: "Hi {contactfield=firstname}"}}
}

func TestTwilio(t *testing.T) {
	sb := start(t, Options{})
	sb.SetAddress(Twilio, "+14155550101", Behavior{Code: TwilioInvalidNumber, Message: "The 'To' number +14155550101 is not a valid phone number."})
	sb.SetAddress(Twilio, "+14155550102", Behavior{Code: TwilioUnsubscribed, Message: "Attempt to send to unsubscribed recipient"})
	sb.SetAddress(Twilio, "+14155550103", Behavior{Code: TwilioNotMobile})
	sb.SetAddress(Twilio, "+14155550104", Behavior{Status: 503, RetryAfter: "3", Times: 1})

	s, err := sms.New(sb.TwilioConfig(), channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)
	tests := []struct {
		to   string
		want channelstest.Outcome
		wait time.Duration
	}{
		{"(415) 555-2671", channelstest.OK, 0},
		{"+14155550101", channelstest.Unreachable, 0},
		{"+14155550102", channelstest.OptedOut, 0},
		{"+14155550103", channelstest.Unreachable, 0},
		{"+14155550104", channelstest.Transient, 3 * time.Second},
		{"+14155550104", channelstest.OK, 0}, // Times: 1
	}
	for _, tc := range tests {
		t.Run(tc.to, func(t *testing.T) {
			rcpt, err := s.Send(context.Background(), smsMessage(tc.to))
			require.Equal(t, tc.want, channelstest.OutcomeOf(err), "err: %v", err)
			require.Equal(t, tc.wait, channels.RetryAfterOf(err))
			if tc.want == channelstest.OK {
				require.Regexp(t, `^SM[0-9a-f]{32}$`, rcpt.ProviderID)
			}
		})
	}

	reqs := sb.Requests(Twilio)
	require.Len(t, reqs, len(tests))
	first := reqs[0]
	require.Equal(t, "/2010-04-01/Accounts/"+sb.Options().TwilioAccountSID+"/Messages.json", first.Path)
	require.Equal(t, "+14155552671", first.Form().Get("To"))
	require.Equal(t, "Hi Ada", first.Form().Get("Body"))
	require.Equal(t, []string{"+14155552671"}, first.Addresses)
	require.Equal(t, 201, first.Status)
	require.Len(t, sb.Delivered(Twilio), 2)
}

func TestTwilioChecksCredentials(t *testing.T) {
	sb := start(t, Options{TwilioAccountSID: "ACtest", TwilioAuthToken: "right"})
	cfg := sb.TwilioConfig()
	cfg.AuthToken = "wrong"
	s, err := sms.New(cfg, channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)
	_, err = s.Send(context.Background(), smsMessage("+14155552671"))
	require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err))
	require.ErrorContains(t, err, "20003")
	require.Equal(t, 401, sb.Requests(Twilio)[0].Status)
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   Behavior
		timeout time.Duration
		want    channelstest.Outcome
		wait    time.Duration
		errText string
	}{
		{"500", Behavior{Status: 500}, 5 * time.Second, channelstest.Transient, 0, "twilio 500"},
		{"429 retry after", Behavior{Status: 429, RetryAfter: "17"}, 5 * time.Second, channelstest.Transient, 17 * time.Second, "code 20429"},
		{"slow", Behavior{Delay: time.Minute}, 100 * time.Millisecond, channelstest.Transient, 0, "timed out"},
		{"garbage", Behavior{Garbage: true}, 5 * time.Second, channelstest.Transient, 0, "not json"},
		{"truncated", Behavior{Truncate: true}, 5 * time.Second, channelstest.Transient, 0, "cut short"},
		{"reset", Behavior{Reset: true}, 5 * time.Second, channelstest.Transient, 0, "twilio request"},
		{"403 body", Behavior{Status: 403, Body: `{"code":20003,"message":"nope"}`}, 5 * time.Second, channelstest.Permanent, 0, "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sb := start(t, Options{})
			sb.SetFault(Twilio, tc.fault)
			s, err := sms.New(sb.TwilioConfig(), channelstest.NewClient(t, tc.timeout), nil)
			require.NoError(t, err)
			_, err = s.Send(context.Background(), smsMessage("+14155552671"))
			require.Equal(t, tc.want, channelstest.OutcomeOf(err), "err: %v", err)
			require.Equal(t, tc.wait, channels.RetryAfterOf(err))
			require.ErrorContains(t, err, tc.errText)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			require.NoError(t, sb.WaitFor(ctx, Twilio, 1))

			sb.Clear()
			_, err = s.Send(context.Background(), smsMessage("+14155552671"))
			require.NoError(t, err, "the fault is gone after Clear")
		})
	}
}

func TestFaultForAllProviders(t *testing.T) {
	sb := start(t, Options{})
	sb.SetFault("", Behavior{Status: 502, Times: 2})
	client := channelstest.NewClient(t, 5*time.Second)
	p, err := push.New(sb.OneSignalConfig(), client, nil)
	require.NoError(t, err)
	w, err := webhook.New(sb.WebhookConfig("whatsapp"), client, nil)
	require.NoError(t, err)
	_, err = p.Send(context.Background(), pushMessage("p1"))
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))
	_, err = w.Send(context.Background(), channels.Message{Key: "w", Channel: "whatsapp", Contact: contact})
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))
	_, err = w.Send(context.Background(), channels.Message{Key: "w", Channel: "whatsapp", Contact: contact})
	require.NoError(t, err)
}

func pushMessage(ids ...string) channels.Message {
	return channels.Message{Key: "push-" + strings.Join(ids, "-"), Channel: channels.Notification, Contact: contact, PushIDs: ids,
		Push: &channels.PushContent{ID: 1, Heading: "Hi {contactfield=firstname}", Message: "News"}}
}

func TestOneSignal(t *testing.T) {
	sb := start(t, Options{})
	sb.SetAddress(OneSignal, "gone-1", Behavior{NotSubscribed: true})
	sb.SetAddress(OneSignal, "gone-2", Behavior{NotSubscribed: true})
	sb.SetAddress(OneSignal, "busy", Behavior{Status: 429, RetryAfter: "2"})
	s, err := push.New(sb.OneSignalConfig(), channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)

	tests := []struct {
		name string
		ids  []string
		want channelstest.Outcome
	}{
		{"subscribed", []string{"p1"}, channelstest.OK},
		{"one of two gone", []string{"p2", "gone-1"}, channelstest.OK},
		{"all gone", []string{"gone-1", "gone-2"}, channelstest.Unreachable},
		{"rate limited", []string{"busy"}, channelstest.Transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Send(context.Background(), pushMessage(tc.ids...))
			require.Equal(t, tc.want, channelstest.OutcomeOf(err), "err: %v", err)
		})
	}
	req := sb.Requests(OneSignal)[0]
	require.Equal(t, "Basic "+sb.Options().OneSignalRESTKey, req.Header.Get("Authorization"))
	require.JSONEq(t, `{"app_id":"`+sb.Options().OneSignalAppID+`","include_player_ids":["p1"],"contents":{"en":"News"},
		"headings":{"en":"Hi Ada"},"idempotency_key":"`+push.IdempotencyKey("push-p1")+`"}`, string(req.Body))
	require.Len(t, sb.Delivered(OneSignal), 2)
}

func TestOneSignalIdempotency(t *testing.T) {
	sb := start(t, Options{})
	s, err := push.New(sb.OneSignalConfig(), channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)
	a, err := s.Send(context.Background(), pushMessage("p1"))
	require.NoError(t, err)
	b, err := s.Send(context.Background(), pushMessage("p1")) // a retry of the same dispatch
	require.NoError(t, err)
	require.Equal(t, a.ProviderID, b.ProviderID)
	require.Equal(t, 2, sb.Count(OneSignal))
	require.Len(t, sb.Delivered(OneSignal), 1)
	require.True(t, sb.Requests(OneSignal)[1].Duplicate)
}

func TestOneSignalChecksKey(t *testing.T) {
	sb := start(t, Options{})
	cfg := sb.OneSignalConfig()
	cfg.RESTAPIKey = "wrong"
	s, err := push.New(cfg, channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)
	_, err = s.Send(context.Background(), pushMessage("p1"))
	require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err))
	require.Equal(t, 403, sb.Requests(OneSignal)[0].Status)
}

func tweetMessage(handle, text string) channels.Message {
	return channels.Message{Key: "t", Channel: channels.Tweet, Contact: contact, To: handle, Tweet: &channels.TweetContent{ID: 1, Text: text}}
}

func TestX(t *testing.T) {
	sb := start(t, Options{})
	sb.SetAddress(X, "busy", Behavior{Status: 503})
	s, err := tweet.New(sb.XConfig(), channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)

	rcpt, err := s.Send(context.Background(), tweetMessage("@Ada", "Hello {contactfield=firstname}"))
	require.NoError(t, err, "the OAuth signature verifies")
	require.NotEmpty(t, rcpt.ProviderID)

	_, err = s.Send(context.Background(), tweetMessage("@Ada", "Hello {contactfield=firstname}"))
	require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err))
	require.ErrorContains(t, err, "duplicate")

	_, err = s.Send(context.Background(), tweetMessage("busy", "Hi"))
	require.Equal(t, channelstest.Transient, channelstest.OutcomeOf(err))

	reqs := sb.Requests(X)
	require.Equal(t, []string{"ada"}, reqs[0].Addresses)
	require.JSONEq(t, `{"text":"@Ada Hello Ada"}`, string(reqs[0].Body))
	require.True(t, strings.HasPrefix(reqs[0].Header.Get("Authorization"), "OAuth "))
}

func TestXChecksSignature(t *testing.T) {
	for _, field := range []string{"consumer secret", "access secret", "consumer key"} {
		t.Run(field, func(t *testing.T) {
			sb := start(t, Options{})
			cfg := sb.XConfig()
			switch field {
			case "consumer secret":
				cfg.ConsumerSecret = "wrong"
			case "access secret":
				cfg.AccessSecret = "wrong"
			default:
				cfg.ConsumerKey = "wrong"
			}
			s, err := tweet.New(cfg, channelstest.NewClient(t, 5*time.Second), nil)
			require.NoError(t, err)
			_, err = s.Send(context.Background(), tweetMessage("ada", "Hi"))
			require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err))
			require.Equal(t, 401, sb.Requests(X)[0].Status)
		})
	}
}

func TestWebhook(t *testing.T) {
	sb := start(t, Options{WebhookSecrets: map[string]string{"whatsapp": "wh-secret"}})
	sb.SetAddress(Webhook, "8", Behavior{Status: 410})
	client := channelstest.NewClient(t, 5*time.Second)
	s, err := webhook.New(sb.WebhookConfig("whatsapp"), client, nil)
	require.NoError(t, err)

	msg := channels.Message{Key: "d-1", Channel: "whatsapp", Contact: contact, Custom: &channels.CustomContent{Properties: []byte(`{"t":"Hi {contactfield=firstname}"}`)}}
	rcpt, err := s.Send(context.Background(), msg)
	require.NoError(t, err)
	require.Equal(t, "wh-1", rcpt.ProviderID)
	req := sb.Requests(Webhook)[0]
	require.Equal(t, "d-1", req.Header.Get(webhook.DeliveryHeader))
	require.Contains(t, string(req.Body), `"content":{"t":"Hi Ada"}`)

	gone := msg
	gone.Contact = channels.Contact{ID: 8}
	_, err = s.Send(context.Background(), gone)
	require.Equal(t, channelstest.Unreachable, channelstest.OutcomeOf(err))

	bad, err := webhook.New(webhook.Config{Channel: "whatsapp", URL: sb.WebhookURL("whatsapp"), Secret: "wrong"}, client, nil)
	require.NoError(t, err)
	_, err = bad.Send(context.Background(), msg)
	require.Equal(t, channelstest.Permanent, channelstest.OutcomeOf(err))

	unsigned, err := webhook.New(sb.WebhookConfig("line"), client, nil)
	require.NoError(t, err)
	_, err = unsigned.Send(context.Background(), channels.Message{Key: "d-2", Channel: "line", Contact: contact})
	require.NoError(t, err, "a channel without a secret accepts unsigned posts")
}

func TestWaitFor(t *testing.T) {
	sb := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sb.WaitFor(ctx, OneSignal, 2) }()
	s, err := push.New(sb.OneSignalConfig(), channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)
	_, _ = s.Send(context.Background(), pushMessage("a"))
	_, _ = s.Send(context.Background(), pushMessage("b"))
	require.NoError(t, <-done)

	short, cancel2 := context.WithCancel(context.Background())
	cancel2()
	require.ErrorIs(t, sb.WaitFor(short, OneSignal, 3), context.Canceled)
}

func TestSMTP(t *testing.T) {
	srv, err := StartSMTP(SMTPOptions{RejectRecipients: []string{"Bounce@Example.com"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	require.True(t, strings.HasPrefix(srv.Addr(), "127.0.0.1:"))

	msg := "From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"
	require.NoError(t, smtp.SendMail(srv.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte(msg)))
	err = smtp.SendMail(srv.Addr(), nil, "a@example.com", []string{"bounce@example.com"}, []byte(msg))
	require.ErrorContains(t, err, "550")
	srv.Reject("late@example.com")
	require.ErrorContains(t, smtp.SendMail(srv.Addr(), nil, "a@example.com", []string{"late@example.com"}, []byte(msg)), "550")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.WaitFor(ctx, 1))
	mails := srv.Messages()
	require.Len(t, mails, 1)
	require.Equal(t, "a@example.com", mails[0].From)
	require.Equal(t, []string{"b@example.com"}, mails[0].To)
	m, err := mails[0].Message()
	require.NoError(t, err)
	require.Equal(t, "Hi", m.Header.Get("Subject"))
	require.Equal(t, []string{"bounce@example.com", "late@example.com"}, srv.Rejected())
	require.Equal(t, "smtp://"+srv.Addr(), srv.URL())
}

func TestSMTPAuth(t *testing.T) {
	srv, err := StartSMTP(SMTPOptions{Username: "demo", Password: "pw"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	msg := []byte("Subject: x\r\n\r\nbody\r\n")

	// net/smtp's PLAIN auth allows unencrypted connections to localhost only.
	good := smtp.PlainAuth("", "demo", "pw", "127.0.0.1")
	require.NoError(t, smtp.SendMail(srv.Addr(), good, "a@example.com", []string{"b@example.com"}, msg))
	bad := smtp.PlainAuth("", "demo", "nope", "127.0.0.1")
	require.Error(t, smtp.SendMail(srv.Addr(), bad, "a@example.com", []string{"b@example.com"}, msg))
	err = smtp.SendMail(srv.Addr(), nil, "a@example.com", []string{"b@example.com"}, msg)
	require.Error(t, err, "auth is required")
	require.Equal(t, 1, srv.Count())
	require.Equal(t, "demo", srv.Messages()[0].Username)
	require.Contains(t, srv.URL(), "demo:pw@")
}

func TestTwilioStatusCallbacks(t *testing.T) {
	type got struct {
		form  url.Values
		valid bool
	}
	received := make(chan got, 10)
	sb := start(t, Options{TwilioStatusCallbacks: true})
	sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		full := "http://" + r.Host + r.URL.RequestURI()
		received <- got{form: r.Form, valid: sms.ValidSignature(sb.Options().TwilioAuthToken, full, r.PostForm, r.Header.Get(sms.SignatureHeader))}
		w.WriteHeader(204)
	}))
	t.Cleanup(sidecar.Close)
	sb.SetAddress(Twilio, "+14155550105", Behavior{DeliveryStatus: "undelivered", DeliveryErrorCode: 30005})

	cfg := sb.TwilioConfig()
	cfg.StatusCallbackURL = sidecar.URL + "/v1/callbacks/twilio"
	s, err := sms.New(cfg, channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)
	msg := smsMessage("+14155550105")
	msg.TrackingHash = "hash-1"
	rcpt, err := s.Send(context.Background(), msg)
	require.NoError(t, err)

	var statuses []string
	for i := 0; i < 2; i++ {
		g := <-received
		require.True(t, g.valid, "signature verifies")
		cb := sms.ParseStatusCallback(g.form)
		require.Equal(t, rcpt.ProviderID, cb.MessageSID)
		require.Equal(t, "hash-1", cb.Stat)
		statuses = append(statuses, cb.MessageStatus)
		if cb.Failed() {
			kind, _ := cb.FailureKind()
			require.Equal(t, channels.KindUnreachable, kind)
		}
	}
	require.Equal(t, []string{"sent", "undelivered"}, statuses)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, sb.WaitForCallbacks(ctx, 2))
	require.Equal(t, 204, sb.Callbacks()[1].Status)
}

func TestCountOnly(t *testing.T) {
	sb := start(t, Options{CountOnly: true})
	sb.SetAddress(Twilio, "+14155550101", Behavior{Code: TwilioInvalidNumber})
	client := channelstest.NewClient(t, 5*time.Second)
	s, err := sms.New(sb.TwilioConfig(), client, nil)
	require.NoError(t, err)
	p, err := push.New(sb.OneSignalConfig(), client, nil)
	require.NoError(t, err)

	_, err = s.Send(context.Background(), smsMessage("+14155552671"))
	require.NoError(t, err)
	_, err = s.Send(context.Background(), smsMessage("+14155550101"))
	require.Equal(t, channelstest.Unreachable, channelstest.OutcomeOf(err))
	_, err = p.Send(context.Background(), pushMessage("p1"))
	require.NoError(t, err)
	_, err = p.Send(context.Background(), pushMessage("p1")) // a repeat: still answered as the first
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, sb.WaitFor(ctx, "", 4))
	require.Equal(t, 2, sb.Count(Twilio))
	require.Equal(t, 2, sb.Count(OneSignal))
	require.Equal(t, 4, sb.Count(""))
	require.Equal(t, 1, sb.DeliveredCount(Twilio))
	require.Equal(t, 1, sb.DeliveredCount(OneSignal), "the repeat delivers nothing new")
	require.Equal(t, 2, sb.DeliveredCount(""))
	require.Empty(t, sb.Requests(""), "nothing is kept")
	require.Empty(t, sb.Delivered(""))

	sb.Reset()
	require.Equal(t, 0, sb.Count(""))
	require.Equal(t, 0, sb.DeliveredCount(""))
}

func TestDeliveredCountMatchesDelivered(t *testing.T) {
	sb := start(t, Options{})
	sb.SetAddress(OneSignal, "gone", Behavior{NotSubscribed: true})
	p, err := push.New(sb.OneSignalConfig(), channelstest.NewClient(t, 5*time.Second), nil)
	require.NoError(t, err)
	_, err = p.Send(context.Background(), pushMessage("p1"))
	require.NoError(t, err)
	_, err = p.Send(context.Background(), pushMessage("gone"))
	require.Error(t, err)
	require.Equal(t, len(sb.Delivered(OneSignal)), sb.DeliveredCount(OneSignal))
	require.Equal(t, 1, sb.DeliveredCount(OneSignal))
	require.Len(t, sb.Requests(OneSignal), 2)
}

func TestSMTPCountOnly(t *testing.T) {
	srv, err := StartSMTP(SMTPOptions{CountOnly: true, RejectRecipients: []string{"bounce@example.com"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	msg := []byte("Subject: x\r\n\r\nbody\r\n")
	for i := 0; i < 3; i++ {
		require.NoError(t, smtp.SendMail(srv.Addr(), nil, "a@example.com", []string{"b@example.com"}, msg))
	}
	require.ErrorContains(t, smtp.SendMail(srv.Addr(), nil, "a@example.com", []string{"bounce@example.com"}, msg), "550")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.WaitFor(ctx, 3))
	require.Equal(t, 3, srv.Count())
	require.Empty(t, srv.Messages())
	require.Equal(t, []string{"bounce@example.com"}, srv.Rejected())
}
