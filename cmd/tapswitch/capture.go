package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/spf13/cobra"

	"github.com/tapswitch/tapswitch/cmd/internal/api"
	"github.com/tapswitch/tapswitch/cmd/internal/capture"
)

// capture: a port's frames, both directions, into a pcap file.
func newCaptureCmd() *cobra.Command {
	var (
		cf       clientFlags
		file     string
		count    int
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "capture PORT -w FILE.pcap [-c COUNT] [--duration D]",
		Short: "Write the frames a port receives and sends into a pcap file (tcpdump -r reads it)",
		Long: `Mirrors port PORT (a pod's name, or the gateway's interface) in both
directions into FILE ("-" for standard output) until COUNT frames, D, or
Ctrl-C. Frames are written whole, without the virtio-net header: a TSO
super-frame shows as one frame of up to 64 KiB (snaplen 262144). When the
writer falls behind the switch, frames are dropped from the capture (never
from the switch) and the count is printed at the end.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return &exitError{code: 2, err: errors.New("capture: -w FILE is required (\"-\" for standard output)")}
			}
			if count < 0 {
				return &exitError{code: 2, err: fmt.Errorf("capture: -c %d: must not be negative", count)}
			}
			if duration < 0 || duration > api.MaxCaptureDuration {
				return &exitError{code: 2, err: fmt.Errorf("capture: --duration %v: want 0 to %v", duration, api.MaxCaptureDuration)}
			}
			var w io.Writer = cmd.OutOrStdout()
			var f *os.File
			if file != "-" {
				var err error
				if f, err = os.Create(file); err != nil {
					return fmt.Errorf("capture: %w", err)
				}
				defer f.Close()
				w = f
			}
			bw := bufio.NewWriterSize(w, 256<<10)
			pw := pcapgo.NewWriterNanos(bw)
			if err := pw.WriteFileHeader(capture.Snaplen, layers.LinkTypeEthernet); err != nil {
				return fmt.Errorf("capture: %s: %w", file, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			spec := api.CaptureSpec{Port: args[0], Count: count, Duration: duration}
			res, err := cf.client().Capture(ctx, spec, func(ci gopacket.CaptureInfo, data []byte) error {
				if err := pw.WritePacket(ci, data); err != nil {
					return fmt.Errorf("capture: %s: %w", file, err)
				}
				if file == "-" {
					return bw.Flush() // a pipe to tcpdump -r - sees frames as they come
				}
				return nil
			})
			if ferr := bw.Flush(); ferr != nil && err == nil {
				err = fmt.Errorf("capture: %s: %w", file, ferr)
			}
			if f != nil {
				if cerr := f.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("capture: %s: %w", file, cerr)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d frames captured on %s, %d dropped by the capture\n", res.Frames, args[0], res.Dropped)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "write", "w", "", "pcap file to write (\"-\": standard output)")
	cmd.Flags().IntVarP(&count, "count", "c", 0, "stop after this many frames (0: no limit)")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: no limit)")
	cf.add(cmd, false)
	return cmd
}
