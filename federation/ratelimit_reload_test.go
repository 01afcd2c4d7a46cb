package federation

import (
	"testing"
	"time"
)

// TestRateLimiterSetRate: a changed rate and burst hold from the next
// Take on, for buckets that existed before (a SIGHUP reload): tokens above
// the new burst are cut, and refills follow the new rate.
func TestRateLimiterSetRate(t *testing.T) {
	now := time.Unix(1000, 0)
	rl := &RateLimiter{Rate: 100, Burst: 100, Now: func() time.Time { return now }}
	for i := range 10 {
		if ok, _ := rl.Take("a.example", 1); !ok {
			t.Fatalf("take %d refused under burst 100", i)
		}
	}
	rl.SetRate(1, 2)
	for i := range 2 {
		if ok, _ := rl.Take("a.example", 1); !ok {
			t.Fatalf("take %d refused under the new burst 2", i)
		}
	}
	ok, wait := rl.Take("a.example", 1)
	if ok || wait != time.Second {
		t.Fatalf("third take: ok=%v wait=%v, want refused for 1s at the new rate", ok, wait)
	}
	now = now.Add(time.Second)
	if ok, _ := rl.Take("a.example", 1); !ok {
		t.Fatal("refused after the new rate refilled one token")
	}
	if ok, _ := rl.Take("b.example", 1); !ok {
		t.Fatal("a new origin starts without a full bucket of the new burst")
	}
}
