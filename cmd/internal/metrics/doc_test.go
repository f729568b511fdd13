package metrics

import (
	"os"
	"strings"
	"testing"

	vswitch "github.com/tapswitch/tapswitch/switch"
)

func readDoc() (string, error) {
	b, err := os.ReadFile("../../../docs/metrics.md")
	return string(b), err
}

// TestDocsListEveryDropReason: docs/metrics.md names every value the
// drops counter's reason label can take.
func TestDocsListEveryDropReason(t *testing.T) {
	doc, err := readDoc()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range vswitch.DropReasons() {
		if !strings.Contains(doc, "`"+r.String()+"`") {
			t.Errorf("docs/metrics.md does not name the drop reason `%s`", r)
		}
	}
}
