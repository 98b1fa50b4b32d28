package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalizeSQL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT *   FROM `leads`\n WHERE id IN (1, 2,3)", "SELECT * FROM `leads` WHERE id IN (?, ...)"},
		{"SELECT a FROM t WHERE s = 'it''s' AND k = _binary'\\x00\\'z' LIMIT 64", "SELECT a FROM t WHERE s = ? AND k = ? LIMIT ?"},
		{"INSERT INTO `sidecar_dispatch_keys` (dedup_key, dispatch_id) VALUES (_binary'ab',1),(_binary'cd',2) ON DUPLICATE KEY UPDATE dispatch_id = VALUES(dispatch_id)",
			"INSERT INTO `sidecar_dispatch_keys` (dedup_key, dispatch_id) VALUES (...), ... ON DUPLICATE KEY UPDATE dispatch_id = VALUES(dispatch_id)"},
		{"UPDATE `utf8mb4_t` SET x = 1.5 WHERE id = -3", "UPDATE `utf8mb4_t` SET x = ? WHERE id = ?"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, normalizeSQL(tc.in))
	}
}

func TestTopShares(t *testing.T) {
	got := topShares(map[string]int{"a": 10, "b": 30, "c": 10}, 10, 2)
	require.Equal(t, []busyShare{{What: "b", Busy: 3}, {What: "a", Busy: 1}}, got)
}
