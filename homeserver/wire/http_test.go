package wire

import "testing"

func TestHTTPStatusCoversEveryCode(t *testing.T) {
	for v, name := range Code_name {
		c := Code(v)
		st := HTTPStatus(c)
		if c == Code_CODE_OK {
			if st != 200 {
				t.Errorf("OK -> %d", st)
			}
			continue
		}
		if st < 400 {
			t.Errorf("%s -> %d", name, st)
		}
		if st == 500 && c != Code_CODE_INTERNAL {
			t.Errorf("%s falls through to 500", name)
		}
		// The body's code name round-trips.
		if got := KindOf(ErrorBody{Code: name, Message: "m"}.Err("op")); got != c {
			t.Errorf("ErrorBody{%s}.Err kind %v", name, got)
		}
	}
	if got := KindOf(ErrorBody{Code: "CODE_FROM_THE_FUTURE"}.Err("op")); got != Code_CODE_INTERNAL {
		t.Errorf("unknown code -> %v", got)
	}
}
