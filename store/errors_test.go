package store_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/store"
)

// TestUnreachable: the errors of a database that is down, restarting or
// dropped the connection count as unreachable (a fenced write runs again,
// a webhook call gets 503 database_unavailable); answers about the
// statement and the caller's own deadline do not.
func TestUnreachable(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: &net.OpError{Op: "connect", Err: syscall.ECONNREFUSED}}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused dial", fmt.Errorf("begin: %w", dial), true},
		{"reset", fmt.Errorf("write: %w", syscall.ECONNRESET), true},
		{"broken pipe", syscall.EPIPE, true},
		{"bad connection", fmt.Errorf("commit: %w", driver.ErrBadConn), true},
		{"invalid connection", mysql.ErrInvalidConn, true},
		{"EOF", io.EOF, true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"server shutting down", &mysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}, true},
		{"connection killed", &mysql.MySQLError{Number: 1927, Message: "Connection was killed"}, true},
		{"too many connections", &mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true},
		{"typed error lost to %v", errors.New("commit batch: dial tcp 127.0.0.1:3306: connect: connection refused"), true},
		{"duplicate key", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		{"deadlock", &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}, false},
		{"syntax", &mysql.MySQLError{Number: 1064, Message: "You have an error in your SQL syntax"}, false},
		{"deadline", fmt.Errorf("write: %w", context.DeadlineExceeded), false},
		{"cancelled", context.Canceled, false},
		{"other", errors.New("no such dispatch"), false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, store.Unreachable(c.err), c.name)
	}
}
