package gossip

import (
	"context"
	"log/slog"
	"strings"
)

// logWriter turns memberlist's log.Logger lines ("[WARN] memberlist: ...")
// into debug records of the agent's slog.Logger. memberlist is chatty about
// normal events (refuted suspicions, failed probes while a peer restarts),
// and what matters to an operator this package logs itself; the original
// level is kept as the attribute "memberlist_level".
type logWriter struct{ log *slog.Logger }

// Write receives exactly one line per call: log.Logger formats the whole
// line before a single Write.
func (w logWriter) Write(p []byte) (int, error) {
	ctx := context.Background()
	if !w.log.Enabled(ctx, slog.LevelDebug) {
		return len(p), nil
	}
	level, msg := splitMemberlistLine(string(p))
	w.log.LogAttrs(ctx, slog.LevelDebug, msg, slog.String("memberlist_level", level))
	return len(p), nil
}

// splitMemberlistLine parses "[LEVEL] memberlist: message\n" into its level
// and message; lines of another shape come back whole with an empty level.
func splitMemberlistLine(line string) (level, msg string) {
	line = strings.TrimRight(line, "\r\n")
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if lvl, after, ok := strings.Cut(rest, "] "); ok && !strings.ContainsAny(lvl, " ]") {
			level, line = lvl, after
		}
	}
	return level, strings.TrimPrefix(line, "memberlist: ")
}
