package main

import (
	"context"
	"errors"
	"io"
)

// runDemo is `sidecar demo` (see the product issue): not built yet.
func runDemo(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	return errors.New("demo: arrives with the product issue (#5); see README.md")
}
