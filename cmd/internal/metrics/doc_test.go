package metrics

import "os"

func readDoc() (string, error) {
	b, err := os.ReadFile("../../../docs/metrics.md")
	return string(b), err
}
