package main

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mautic-mm/sidecar/internal/seed"
)

// floorResult is one floor measurement: what the database alone allows.
type floorResult struct {
	Conns   int     `json:"connections"`
	Count   int64   `json:"count"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"per_second"`
	Latency latency `json:"latency"` // of one commit or one contact's transaction
	CPU     cpuUse  `json:"cpu"`
}

// floorTable is the scratch table of the insert floor.
const floorTable = "loadgen_floor"

// insertFloor measures bare single-row INSERT commits per second: conns
// connections, each inserting one small row per autocommit statement into a
// scratch table, for d.
func insertFloor(ctx context.Context, b *benchDB, conns int, d time.Duration, prog *progress) (floorResult, error) {
	if _, err := b.DB.ExecContext(ctx, "CREATE TABLE "+floorTable+" (id BIGINT UNSIGNED AUTO_INCREMENT NOT NULL,"+
		" contact_id BIGINT UNSIGNED NOT NULL, created_at DATETIME(6) NOT NULL, PRIMARY KEY (id)) ENGINE=InnoDB"); err != nil {
		return floorResult{}, fmt.Errorf("insert floor: %w", err)
	}
	defer b.DB.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+floorTable) //nolint:errcheck // scratch table
	q := "INSERT INTO " + floorTable + " (contact_id, created_at) VALUES (?, ?)"
	return runFloor(ctx, b, conns, d, 0, prog, nil, func(ctx context.Context, c *sql.Conn, i int64) error {
		_, err := c.ExecContext(ctx, q, i+1, time.Now().UTC())
		return err
	})
}

// contactFloorDispatches is the scratch copy of sidecar_dispatches the
// per-contact floor updates.
const contactFloorDispatches = "loadgen_floor_dispatches"

// contactFloorMax bounds the contacts the per-contact floor may use (its
// dispatch rows are written beforehand).
const contactFloorMax = 60000

// contactFloor measures the per-contact query floor: the rate an
// unbatched implementation could reach with one READ COMMITTED transaction
// per contact holding the minimal statements — read the contact, its
// frequency rules and its DNC rows, count its email sends in the window,
// insert one email_stats row, update its dispatch row — on conns
// connections for d (or until contactFloorMax contacts).
func contactFloor(ctx context.Context, b *benchDB, ds *dataset, conns int, d time.Duration, prog *progress) (floorResult, error) {
	n := min(ds.Contacts, contactFloorMax)
	if err := prepareContactFloor(ctx, b, ds, n); err != nil {
		return floorResult{}, err
	}
	var watermark int64
	if err := b.DB.GetContext(ctx, &watermark, "SELECT COALESCE(MAX(id), 0) FROM "+b.T("email_stats")); err != nil {
		return floorResult{}, fmt.Errorf("contact floor: %w", err)
	}
	defer func() {
		// Leave the dataset as seeded for the phases that follow.
		bg := context.WithoutCancel(ctx)
		_, _ = b.DB.ExecContext(bg, "DELETE FROM "+b.T("email_stats")+" WHERE id > ?", watermark)
		_, _ = b.DB.ExecContext(bg, "DROP TABLE IF EXISTS "+contactFloorDispatches)
	}()
	var (
		readContact = "SELECT * FROM " + b.T("leads") + " WHERE id = ?"
		readRules   = "SELECT * FROM " + b.T("lead_frequencyrules") + " WHERE lead_id = ?"
		readDNC     = "SELECT * FROM " + b.T("lead_donotcontact") + " WHERE lead_id = ?"
		countSends  = "SELECT COUNT(*) FROM " + b.T("email_stats") + " WHERE lead_id = ? AND date_sent >= ? AND date_sent <= ?"
		insertStat  = "INSERT INTO " + b.T("email_stats") + " (email_id, lead_id, email_address, date_sent, is_read, is_failed," +
			" viewed_in_browser, tracking_hash, retry_count, source, source_id, tokens, open_count, open_details)" +
			" VALUES (?, ?, ?, ?, 0, 0, 0, ?, 0, 'campaign.event', ?, 'a:0:{}', 0, 'a:0:{}')"
		updateDispatch = "UPDATE " + contactFloorDispatches + " SET state = 'sent', channel = 'email', channel_id = ?, attempts = 1," +
			" trace = ?, progress = NULL, updated_at = ? WHERE id = ?"
		trace = `[{"channel":"email","decision":"sent","detail":"provider id <floor>"}]`
	)
	setup := func(ctx context.Context, c *sql.Conn) error {
		_, err := c.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
		return err
	}
	return runFloor(ctx, b, conns, d, int64(n), prog, setup, func(ctx context.Context, c *sql.Conn, i int64) error {
		id := i + 1
		now := time.Now().UTC()
		tx, err := c.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // no-op after commit
		for _, q := range []string{readContact, readRules, readDNC} {
			if err := discardRows(tx.QueryContext(ctx, q, id)); err != nil {
				return err
			}
		}
		var count int
		if err := tx.QueryRowContext(ctx, countSends, id, now.AddDate(0, -1, 0), now).Scan(&count); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insertStat, ds.Content["email"], id, "c"+strconv.FormatInt(id, 10)+"@example.test", now,
			"lgfloor"+strconv.FormatInt(id, 36), ds.EventID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, updateDispatch, ds.Content["email"], trace, now, id); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// prepareContactFloor copies sidecar_dispatches' structure and writes one
// accepted dispatch per contact 1..n (dispatch id = contact id).
func prepareContactFloor(ctx context.Context, b *benchDB, ds *dataset, n int) error {
	if _, err := b.DB.ExecContext(ctx, "DROP TABLE IF EXISTS "+contactFloorDispatches); err != nil {
		return fmt.Errorf("contact floor: %w", err)
	}
	if _, err := b.DB.ExecContext(ctx, "CREATE TABLE "+contactFloorDispatches+" LIKE "+b.T("sidecar_dispatches")); err != nil {
		return fmt.Errorf("contact floor: %w", err)
	}
	ins := seed.NewBulk(contactFloorDispatches, []string{"id", "state", "contact_id", "message_id", "campaign_id", "event_id", "attempts",
		"trace", "run_at", "created_at", "updated_at"}, bulkRows)
	now := time.Now().UTC()
	for id := 1; id <= n; id++ {
		if err := ins.Add(ctx, b.DB, id, "accepted", id, ds.MessageID, ds.CampaignID, ds.EventID, 0, "[]", now, now, now); err != nil {
			return err
		}
	}
	return ins.Flush(ctx, b.DB)
}

// discardRows reads and discards a query's rows.
func discardRows(rows *sql.Rows, err error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// runFloor runs op(i) for i = 0, 1, ... on conns dedicated connections
// until d has passed or limit operations ran (limit 0: no limit).
func runFloor(ctx context.Context, b *benchDB, conns int, d time.Duration, limit int64, prog *progress,
	setup func(context.Context, *sql.Conn) error, op func(context.Context, *sql.Conn, int64) error) (floorResult, error) {
	pool, err := b.pool(conns, nil)
	if err != nil {
		return floorResult{}, err
	}
	defer pool.Close()
	cs := make([]*sql.Conn, conns)
	for i := range cs {
		if cs[i], err = pool.Conn(ctx); err != nil {
			return floorResult{}, fmt.Errorf("floor connection: %w", err)
		}
		defer cs[i].Close()
		if setup != nil {
			if err := setup(ctx, cs[i]); err != nil {
				return floorResult{}, fmt.Errorf("floor connection: %w", err)
			}
		}
	}
	var (
		next, done atomic.Int64
		mu         sync.Mutex
		firstErr   error
		lats       = make([][]time.Duration, conns)
		wg         sync.WaitGroup
	)
	cpu0 := markCPU(0, b.ServerPID)
	start := time.Now()
	deadline := start.Add(d)
	stopProg := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopProg:
				return
			case <-t.C:
				prog.update(done.Load())
			}
		}
	}()
	for w := range cs {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if limit > 0 && i >= limit {
					return
				}
				t0 := time.Now()
				if err := op(ctx, cs[w], i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
				done.Add(1)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := markCPU(0, b.ServerPID).since(cpu0)
	close(stopProg)
	prog.update(done.Load())
	prog.finish()
	if firstErr != nil {
		return floorResult{}, fmt.Errorf("floor: %w", firstErr)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	r := floorResult{Conns: conns, Count: done.Load(), Seconds: elapsed.Seconds(), Latency: summarize(all), CPU: cpu}
	r.Rate = float64(r.Count) / r.Seconds
	return r, ctx.Err()
}
