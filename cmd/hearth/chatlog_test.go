package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestChatLogger: without --verbose a chat command still shows errors on
// stderr (nothing else); with it, everything down to debug.
func TestChatLogger(t *testing.T) {
	var quiet, verbose bytes.Buffer
	for _, c := range []struct {
		w       *bytes.Buffer
		verbose bool
	}{{&quiet, false}, {&verbose, true}} {
		log := chatLogger(c.w, c.verbose)
		log.Error("a frame from the server did not decode; reconnecting")
		log.Warn("session ended")
		log.Debug("frame read")
	}
	if q := quiet.String(); !strings.Contains(q, "did not decode") || strings.Contains(q, "session ended") || strings.Contains(q, "frame read") {
		t.Errorf("without --verbose: %q", q)
	}
	if v := verbose.String(); !strings.Contains(v, "did not decode") || !strings.Contains(v, "session ended") || !strings.Contains(v, "frame read") {
		t.Errorf("with --verbose: %q", v)
	}
}
