package mautic

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Message is a marketing message (messages row) with its enabled channels.
type Message struct {
	ID          int64
	Name        string
	IsPublished bool
	// Channels are the message_channels rows with is_enabled = 1, ORDER BY id
	// (Mautic reads them without ORDER BY; see mautic-reference.md 3.2).
	Channels []MessageChannel
}

// MessageChannel is a message_channels row.
type MessageChannel struct {
	ID      int64
	Channel string
	// ChannelID is the content id (emails.id, sms_messages.id, ...); 0 when
	// the column is NULL (no content chosen).
	ChannelID  int64
	Properties []byte // JSON
}

// Message returns a marketing message and its enabled channels. It returns
// ErrNotFound when no messages row has that id.
func (db *DB) Message(ctx context.Context, q Querier, id int64) (Message, error) {
	m, err := db.Messages(ctx, q, []int64{id})
	if err != nil {
		return Message{}, err
	}
	msg, ok := m[id]
	if !ok {
		return Message{}, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	return msg, nil
}

// Messages loads several marketing messages (missing ids are absent).
func (db *DB) Messages(ctx context.Context, q Querier, ids []int64) (map[int64]Message, error) {
	ids = uniqueIDs(ids)
	out := make(map[int64]Message, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	in := inPlaceholders(len(ids))
	rows, err := q.QueryContext(ctx, "SELECT id, name, is_published FROM "+db.T("messages")+" WHERE id IN ("+in+")", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	for rows.Next() {
		var m Message
		if err := rows.Scan(&m.ID, &m.Name, &m.IsPublished); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load messages: %w", err)
		}
		out[m.ID] = m
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	rows, err = q.QueryContext(ctx, "SELECT id, message_id, channel, channel_id, properties FROM "+db.T("message_channels")+
		" WHERE message_id IN ("+in+") AND is_enabled = 1 ORDER BY id", int64Args(ids)...)
	if err != nil {
		return nil, fmt.Errorf("load message channels: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c     MessageChannel
			msgID int64
			chID  sql.NullInt64
			props sql.RawBytes
		)
		if err := rows.Scan(&c.ID, &msgID, &c.Channel, &chID, &props); err != nil {
			return nil, fmt.Errorf("load message channels: %w", err)
		}
		c.ChannelID = chID.Int64
		c.Properties = append([]byte(nil), props...)
		m := out[msgID]
		m.Channels = append(m.Channels, c)
		out[msgID] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load message channels: %w", err)
	}
	return out, nil
}

// IsNotFound reports whether err is (or wraps) ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
