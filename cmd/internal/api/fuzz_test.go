package api

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeBody: the control API's request decoding refuses, with
// ErrInvalid, anything that is not exactly one known JSON object.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"name":"web-1","ip":"10.244.0.5/24"}`))
	f.Add([]byte(`{"name":"x","bogus":1}`))
	f.Add([]byte(`{"name":"x"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := httptest.NewRequest("POST", "/v1/pods", bytes.NewReader(b))
		var s PodSpec
		if err := decodeBody(httptest.NewRecorder(), r, &s); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error of the wrong kind: %v", err)
		}
	})
}
