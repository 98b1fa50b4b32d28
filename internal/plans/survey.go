package plans

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mautic-mm/sidecar/mautic"
	"github.com/mautic-mm/sidecar/store"
)

// Batch is what Survey reads for: the inputs of one realistic batch.
type Batch struct {
	// ContactIDs are the batch's contacts (a routing batch is 128 by
	// default, SIDECAR_BATCH_SIZE); also the batch size of the claims.
	ContactIDs []int64
	// MessageID is the marketing message routed.
	MessageID int64
	// Content maps a channel (email, sms, notification, tweet) to its
	// content id; its channels are also the queue worker's channels.
	Content map[string]int64
	// EventID is the campaign event the dispatches and queue rows carry.
	EventID int64
	// Defaults are the global frequency limits per channel, so that the
	// frequency reads count the sends of contacts without a rule too.
	Defaults map[string]mautic.Limit
	// SMSHash is a tracking hash for the SMS callback's read ("" skips it).
	SMSHash string
	// Now is the time of the batch.
	Now time.Time
}

// Target is the database Survey reads.
type Target struct {
	// DB is a pool on the database opened as the sidecar opens it
	// (mautic.Open): EXPLAIN binds the recorded arguments through it, and
	// how a time is bound decides whether an index applies.
	DB *sqlx.DB
	// DSN connects to the same database; when set, store's status reads
	// (Backlog, OldestDue, Recent, Latest), which use their own pool, are
	// recorded through a pool of OpenDB.
	DSN string
	// Prefix is Mautic's table prefix.
	Prefix string
}

// Run surveys b on t and explains what it recorded.
func Run(ctx context.Context, t Target, b Batch, bigTable int64) ([]Plan, error) {
	var rec Recorder
	if err := Survey(ctx, &rec, t, b); err != nil {
		return nil, err
	}
	e := &Explainer{DB: t.DB, Prefix: t.Prefix, BigTable: bigTable}
	return e.Explain(ctx, rec.Queries())
}

// Survey runs, through rec, the reads the sidecar makes for a batch: a
// routing batch (bridge/dispatch.go: the claim, the loader's reads, the
// write phase's fence and reads), a queue batch (bridge/queue.go), the
// intake's read, and the periodic and status page reads. Everything runs
// in one READ COMMITTED transaction that is rolled back, so the database
// is left as it was. Each statement is filed under the Go function that
// ran it.
func Survey(ctx context.Context, rec *Recorder, t Target, b Batch) error {
	if len(b.ContactIDs) == 0 {
		return errors.New("survey: no contacts")
	}
	mdb, err := mautic.Wrap(t.DB, t.Prefix)
	if err != nil {
		return err
	}
	st := store.New(t.DB, t.Prefix)
	now := b.Now.UTC()
	limit := len(b.ContactIDs)
	var chans []string
	for ch := range b.Content {
		chans = append(chans, ch)
	}
	sort.Strings(chans)

	tx, err := st.BeginTx(ctx)
	if err != nil {
		return fmt.Errorf("survey: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // always rolled back: the survey writes nothing
	q := rec.Wrap(tx)
	lease := store.NewLease()

	// A routing batch: store.ClaimBatch's claim and contact leases.
	claimed, err := st.Claim(NamedClaim(ctx, "store.Claim"), q, now, limit)
	if err != nil {
		return err
	}
	if _, err := st.LeaseContacts(Named(ctx, "store.LeaseContacts"), q, b.ContactIDs, lease, now.Add(time.Minute), now); err != nil {
		return err
	}
	// The loader (bridge/facts.go).
	if _, err := mdb.Messages(Named(ctx, "mautic.Messages"), q, []int64{b.MessageID}); err != nil {
		return err
	}
	if _, err := mdb.Contacts(Named(ctx, "mautic.Contacts"), q, b.ContactIDs, true); err != nil {
		return err
	}
	rules, err := mdb.FrequencyRules(Named(ctx, "mautic.FrequencyRules"), q, b.ContactIDs)
	if err != nil {
		return err
	}
	if _, err := mdb.DoNotContact(Named(ctx, "mautic.DoNotContact"), q, b.ContactIDs); err != nil {
		return err
	}
	if _, err := mdb.PushIDs(Named(ctx, "mautic.PushIDs"), q, b.ContactIDs); err != nil {
		return err
	}
	var emails map[int64]mautic.Email
	if id := b.Content["email"]; id > 0 {
		if emails, err = mdb.Emails(Named(ctx, "mautic.Emails"), q, []int64{id}); err != nil {
			return err
		}
	}
	if id := b.Content["sms"]; id > 0 {
		if _, err := mdb.SMSMessages(Named(ctx, "mautic.SMSMessages"), q, []int64{id}); err != nil {
			return err
		}
	}
	if id := b.Content["notification"]; id > 0 {
		if _, err := mdb.PushNotifications(Named(ctx, "mautic.PushNotifications"), q, []int64{id}); err != nil {
			return err
		}
	}
	if id := b.Content["tweet"]; id > 0 {
		if _, err := mdb.Tweets(Named(ctx, "mautic.Tweets"), q, []int64{id}); err != nil {
			return err
		}
	}
	for _, ch := range chans {
		if _, err := mdb.Frequency(Named(ctx, "mautic.Frequency("+ch+")"), q, ch, b.ContactIDs, rules, b.Defaults, now); err != nil {
			return err
		}
	}
	// The write phase: the fence, queueing's reads and the email copy.
	dispatchIDs := b.ContactIDs // any ids: the plan is what matters
	if len(claimed) > 0 {
		dispatchIDs = nil
		for _, d := range claimed {
			dispatchIDs = append(dispatchIDs, d.ID)
		}
	}
	if _, err := st.Owned(Named(ctx, "store.Owned"), q, lease, dispatchIDs, now, time.Second); err != nil {
		return err
	}
	if len(chans) > 0 {
		ch := chans[0]
		if _, _, err := mdb.PendingQueueRow(Named(ctx, "mautic.PendingQueueRow"), q, b.ContactIDs[0], ch, b.Content[ch]); err != nil {
			return err
		}
	}
	if _, err := mdb.EventExists(Named(ctx, "mautic.EventExists"), q, b.EventID); err != nil {
		return err
	}
	if e, ok := emails[b.Content["email"]]; ok {
		copies := []mautic.EmailCopy{{ID: mautic.EmailCopyID(e.Subject, e.CustomHTML), Created: now, Subject: e.Subject, Body: e.CustomHTML}}
		if err := mdb.InsertEmailCopies(Named(ctx, "mautic.InsertEmailCopies"), q, copies); err != nil {
			return err
		}
	}

	// A queue batch (bridge/queue.go): the scan's lower bound, the claim,
	// the fence.
	from, err := mdb.PendingQueueFloor(Named(ctx, "mautic.PendingQueueFloor"), q, chans)
	if err != nil {
		return err
	}
	if from.IsZero() || from.After(now) {
		from = now.Add(-time.Hour)
	}
	rows, err := mdb.ClaimDueQueueRows(NamedClaim(ctx, "mautic.ClaimDueQueueRows"), q, chans, from, now, limit)
	if err != nil {
		return err
	}
	queueIDs := b.ContactIDs
	if len(rows) > 0 {
		queueIDs = nil
		for _, r := range rows {
			queueIDs = append(queueIDs, r.ID)
		}
	}
	if _, err := st.OwnedQueueRows(Named(ctx, "store.OwnedQueueRows"), q, lease, queueIDs, now, time.Second); err != nil {
		return err
	}
	if _, err := mdb.QueueRows(Named(ctx, "mautic.QueueRows"), q, queueIDs[:1]); err != nil {
		return err
	}

	// The intake, the metrics and the status page, the SMS callback.
	if _, err := mdb.ExistingContacts(Named(ctx, "mautic.ExistingContacts"), q, b.ContactIDs); err != nil {
		return err
	}
	if _, _, err := mdb.QueueDepth(Named(ctx, "mautic.QueueDepth"), q, chans, now); err != nil {
		return err
	}
	if b.SMSHash != "" {
		if _, _, err := mdb.SMSStatByHash(Named(ctx, "mautic.SMSStatByHash"), q, b.SMSHash); err != nil {
			return err
		}
	}
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("survey: %w", err)
	}
	if t.DSN == "" {
		return nil
	}
	return surveyStatus(ctx, rec, t, now)
}

// surveyStatus runs store's reads that use the store's own pool.
func surveyStatus(ctx context.Context, rec *Recorder, t Target, now time.Time) error {
	pool, err := rec.OpenDB(t.DSN)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool, t.Prefix)
	if _, err := st.Backlog(Named(ctx, "store.Backlog")); err != nil {
		return err
	}
	if _, err := st.OldestDue(Named(ctx, "store.OldestDue"), now); err != nil {
		return err
	}
	// The status page: the last hour (at most 20001 rows), the 50 newest
	// dispatches, and the 50 newest failed ones.
	if _, err := st.Recent(Named(ctx, "store.Recent"), now.Add(-time.Hour), 20001); err != nil {
		return err
	}
	if _, err := st.Latest(Named(ctx, "store.Latest"), "", 50); err != nil {
		return err
	}
	if _, err := st.Latest(Named(ctx, "store.Latest(failed)"), store.Failed, 50); err != nil {
		return err
	}
	return nil
}
