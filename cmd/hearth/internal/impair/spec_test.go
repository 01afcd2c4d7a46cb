package impair

import (
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	udp, tcp, err := ParseSpec("loss=5%, rtt=200ms,jitter=10ms,blackout=2s/6s,rebind=500ms,seed=18,dup=0.01,reorder=1%,rate=1000")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Loss: 0.05, Delay: 100 * time.Millisecond, Jitter: 10 * time.Millisecond,
		Blackout: Blackout{For: 2 * time.Second, Every: 6 * time.Second}, Rebind: 500 * time.Millisecond,
		Seed: 18, Duplicate: 0.01, Reorder: 0.01, RateBytesPerSec: 1000}
	if udp != want || tcp != want {
		t.Errorf("got udp %+v tcp %+v, want both %+v", udp, tcp, want)
	}
	udp, tcp, err = ParseSpec("udp=blocked,delay=100ms")
	if err != nil || udp.Loss != 1 || tcp.Loss != 0 || tcp.Delay != 100*time.Millisecond || udp.Delay != tcp.Delay {
		t.Errorf("udp=blocked: udp %+v tcp %+v err %v", udp, tcp, err)
	}
	if udp, tcp, err := ParseSpec(""); err != nil || udp != (Config{}) || tcp != (Config{}) {
		t.Errorf("empty spec: %+v %+v %v", udp, tcp, err)
	}
	for spec, why := range map[string]string{
		"loss=150%":       "outside",
		"loss":            "KEY=VALUE",
		"delay=fast":      "invalid duration",
		"delay=-1s":       "negative",
		"blackout=2s":     "FOR/EVERY",
		"blackout=7s/6s":  "blackout",
		"udp=slow":        "blocked",
		"bandwidth=1Mbit": "unknown key",
		"seed=x":          "invalid syntax",
	} {
		if _, _, err := ParseSpec(spec); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseSpec(%q) = %v, want an error about %q", spec, err, why)
		}
	}
}
