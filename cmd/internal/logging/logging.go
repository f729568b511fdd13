// Package logging builds the zap loggers: JSON lines for the daemon (what
// journald and log shippers want), short console lines for the CLI and the
// demo.
package logging

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ParseLevel accepts debug, info, warn and error; empty means info.
func ParseLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug":
		return zapcore.DebugLevel, nil
	case "info", "":
		return zapcore.InfoLevel, nil
	case "warn":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// JSON returns the daemon's logger: one JSON object per line on stderr.
func JSON(level string) (*zap.Logger, error) {
	log, _, err := JSONLevel(level)
	return log, err
}

// JSONLevel is JSON with a level that can be changed while the logger is in
// use (a configuration reload).
func JSONLevel(level string) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, zap.AtomicLevel{}, err
	}
	al := zap.NewAtomicLevelAt(lvl)
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), al)
	return zap.New(core), al, nil
}

// Console returns the CLI's logger: "LEVEL message key=value" lines on
// stderr, no timestamps (a person is reading).
func Console(level string) (*zap.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	enc.CallerKey = ""
	enc.EncodeLevel = zapcore.CapitalColorLevelEncoder
	if fi, err := os.Stderr.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), lvl)
	return zap.New(core), nil
}
