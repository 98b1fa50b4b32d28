package email

import (
	"bytes"
	"sync"
)

// appendData appends msg to dst as the content of SMTP's DATA command
// (RFC 5321 4.5.2): every line ends in CRLF (a bare LF gets its CR), a
// line that starts with a dot gets a second one, and the end-of-data line
// "." follows. It does in one pass over whole lines what textproto's
// DotWriter does byte by byte, so that the message goes out in one write.
func appendData(dst, msg []byte) []byte {
	lineStart := true
	for len(msg) > 0 {
		if lineStart && msg[0] == '.' {
			dst = append(dst, '.')
		}
		i := bytes.IndexByte(msg, '\n')
		if i < 0 {
			dst = append(dst, msg...)
			lineStart = false
			break
		}
		dst = append(dst, msg[:i]...)
		if i == 0 || msg[i-1] != '\r' {
			dst = append(dst, '\r')
		}
		dst = append(dst, '\n')
		msg = msg[i+1:]
		lineStart = true
	}
	if !lineStart {
		if dst[len(dst)-1] != '\r' {
			dst = append(dst, '\r')
		}
		dst = append(dst, '\n')
	}
	return append(dst, ".\r\n"...)
}

// rawPool holds the buffers MIME messages are written into (built.buf),
// reused from one send to the next.
var rawPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
