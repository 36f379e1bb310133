package measure

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Table is a Markdown table with its columns padded to equal width: aligned when the harness prints it, and
// pasted into docs/benchmarks.md unchanged.
type Table struct {
	rows [][]string
}

// NewTable starts a table with its header.
func NewTable(header ...string) *Table { return &Table{rows: [][]string{header}} }

// Add appends a row. Cells are formatted by type: a time.Duration as FormatDuration does, a float64 to a
// whole number (rates), anything else as fmt.Sprint.
func (t *Table) Add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		switch v := c.(type) {
		case time.Duration:
			row[i] = FormatDuration(v)
		case float64:
			row[i] = strconv.FormatFloat(v, 'f', 0, 64)
		default:
			row[i] = fmt.Sprint(v)
		}
	}
	t.rows = append(t.rows, row)
}

// AddSummary appends a row of the labels followed by s's count, errors, rate, p50, p99 and max: the columns
// every harness reports for a measured cell.
func (t *Table) AddSummary(s Summary, labels ...any) {
	t.Add(slices.Concat(labels, []any{s.Count, s.Errors, s.Rate(), s.P50, s.P99, s.Max})...)
}

// String renders the table, one line per row, for fmt.Print.
func (t *Table) String() string {
	var widths []int
	for _, row := range t.rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 3) // the separator row's "---"
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	line := func(cells []string, pad func(cell string, width int) string) {
		b.WriteString("|")
		for i, w := range widths {
			cell := ""
			if i < len(cells) {
				cell = cells[i]
			}
			b.WriteString(" " + pad(cell, w) + " |")
		}
		b.WriteString("\n")
	}
	spaces := func(cell string, w int) string { return cell + strings.Repeat(" ", w-utf8.RuneCountInString(cell)) }
	line(t.rows[0], spaces)
	line(nil, func(_ string, w int) string { return strings.Repeat("-", w) })
	for _, row := range t.rows[1:] {
		line(row, spaces)
	}
	return b.String()
}

// FormatDuration shows a latency at the precision that matters for it: whole microseconds below a
// millisecond, tenths of a millisecond above.
func FormatDuration(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// Fraction is a figure as a fraction of a baseline measured in the same run: the ratio the reports lead
// with, since absolute figures move with whatever else shares the machine.
type Fraction float64

// Ratio is x as a fraction of baseline; NaN when there is no baseline (0), so the report says so instead of
// showing +Inf.
func Ratio(x, baseline float64) Fraction {
	if baseline == 0 {
		return Fraction(math.NaN())
	}
	return Fraction(x / baseline)
}

// Percent formats f as "86%".
func (f Fraction) Percent() string {
	if math.IsNaN(float64(f)) {
		return "n/a"
	}
	return strconv.FormatFloat(100*float64(f), 'f', 0, 64) + "%"
}

// Times formats f as "3.1×".
func (f Fraction) Times() string {
	if math.IsNaN(float64(f)) {
		return "n/a"
	}
	return strconv.FormatFloat(float64(f), 'f', 1, 64) + "×"
}
