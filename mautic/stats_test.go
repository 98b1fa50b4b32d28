package mautic_test

import (
	"crypto/md5" //nolint:gosec // email_copies.id is an md5 in Mautic's schema.
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mautic-mm/sidecar/mautic"
)

// TestEmailCopyID: the md5 of the subject followed by the HTML, in
// lowercase hex (mautic-reference.md 6.1).
func TestEmailCopyID(t *testing.T) {
	require.Equal(t, "d41d8cd98f00b204e9800998ecf8427e", mautic.EmailCopyID("", ""))
	sum := md5.Sum([]byte("Hello {contactfield=firstname}<p>Hi</p>")) //nolint:gosec // see import.
	require.Equal(t, hex.EncodeToString(sum[:]), mautic.EmailCopyID("Hello {contactfield=firstname}", "<p>Hi</p>"))
}
