package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/infer-serving/infer/pkg/loadgen"
	"github.com/infer-serving/infer/pkg/monitor"
)

// TopOptions shape the `infer top` dashboard.
type TopOptions struct {
	// Poll reads the servers once; nil polls nothing (frames then come
	// only from Send, as in tests).
	Poll func(context.Context) monitor.Frame
	// Interval is the time between polls.
	Interval time.Duration
	// Servers are shown in the title.
	Servers []string
	// Objectives colour the latencies and error rates.
	Objectives []loadgen.Objective
	// Context ends polling.
	Context context.Context
}

// Panels of the dashboard, in tab order.
const (
	panelModels = iota
	panelBudget
	panelRollouts
	panelQuality
	numPanels
)

var panelNames = [numPanels]string{"Models", "Budget", "Rollouts", "Quality"}

type topKeys struct {
	Quit, Help, Tab, Up, Down, Detail, Back, Filter, Pause key.Binding
}

func (k topKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Quit, k.Help, k.Tab, k.Up, k.Down, k.Detail, k.Filter, k.Pause}
}

func (k topKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.Detail, k.Back}, {k.Tab, k.Filter, k.Pause}, {k.Help, k.Quit}}
}

func newTopKeys() topKeys {
	return topKeys{
		Quit:   key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Help:   key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Tab:    key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "panel")),
		Up:     key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:   key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Detail: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		Back:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Filter: key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Pause:  key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause")),
	}
}

// frameMsg carries a poll's result.
type frameMsg monitor.Frame

// pollMsg asks for the next poll.
type pollMsg struct{}

// Top is the `infer top` model.
type Top struct {
	o             TopOptions
	keys          topKeys
	help          help.Model
	filter        textinput.Model
	filtering     bool
	frame, latest monitor.Frame
	have          bool
	width, height int
	panel         int
	selected      monitor.Key
	detail        bool
	paused        bool
	showHelp      bool
	plain         bool // no padding to the screen's height, no key help
}

// NewTop returns the dashboard, before its first frame.
func NewTop(o TopOptions) *Top {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Context == nil {
		o.Context = context.Background()
	}
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "model name"
	styles := textinput.DefaultStyles(true)
	styles.Cursor.Blink = false
	in.SetStyles(styles)
	return &Top{o: o, keys: newTopKeys(), help: help.New(), filter: in, width: 80, height: 24}
}

// Frame returns the frame shown.
func (m *Top) Frame() monitor.Frame { return m.frame }

// Init starts polling.
func (m *Top) Init() tea.Cmd { return m.poll() }

func (m *Top) poll() tea.Cmd {
	if m.o.Poll == nil {
		return nil
	}
	return func() tea.Msg {
		if m.o.Context.Err() != nil {
			return nil
		}
		return frameMsg(m.o.Poll(m.o.Context))
	}
}

// Update handles keys, resizes and frames.
func (m *Top) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.SetWidth(msg.Width)
		return m, nil
	case frameMsg:
		m.latest = monitor.Frame(msg)
		if !m.paused {
			m.show(m.latest)
		}
		return m, tea.Tick(m.o.Interval, func(time.Time) tea.Msg { return pollMsg{} })
	case pollMsg:
		return m, m.poll()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// show makes f the frame on screen, keeping the selection on the same
// model version where it still exists.
func (m *Top) show(f monitor.Frame) {
	m.frame, m.have = f, true
	rows := m.rows()
	if len(rows) > 0 && !slices.ContainsFunc(rows, func(r monitor.Row) bool { return r.Key == m.selected }) {
		m.selected = rows[0].Key
	}
}

func (m *Top) key(msg tea.KeyPressMsg) tea.Cmd {
	if m.filtering {
		switch msg.String() {
		case "enter":
			m.filtering = false
			m.filter.Blur()
		case "esc":
			m.filtering = false
			m.filter.Blur()
			m.filter.SetValue("")
		default:
			var cmd tea.Cmd
			m.filter, cmd = m.filter.Update(msg)
			m.show(m.frame)
			return cmd
		}
		m.show(m.frame)
		return nil
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit
	case key.Matches(msg, m.keys.Help):
		m.showHelp = !m.showHelp
	case key.Matches(msg, m.keys.Back):
		m.detail, m.showHelp = false, false
	case m.detail && key.Matches(msg, m.keys.Detail):
		m.detail = false
	case key.Matches(msg, m.keys.Detail):
		m.detail = m.have && len(m.rows()) > 0
	case key.Matches(msg, m.keys.Tab):
		m.panel = (m.panel + 1) % numPanels
		m.detail = false
	case key.Matches(msg, m.keys.Up):
		m.move(-1)
	case key.Matches(msg, m.keys.Down):
		m.move(1)
	case key.Matches(msg, m.keys.Filter):
		m.filtering = true
		return m.filter.Focus()
	case key.Matches(msg, m.keys.Pause):
		m.paused = !m.paused
		if !m.paused && m.latest.At.After(m.frame.At) {
			m.show(m.latest)
		}
	}
	return nil
}

func (m *Top) move(by int) {
	rows := m.rows()
	i := slices.IndexFunc(rows, func(r monitor.Row) bool { return r.Key == m.selected })
	if i = max(0, min(len(rows)-1, i+by)); i < len(rows) {
		m.selected = rows[i].Key
	}
}

// rows returns the frame's rows the filter lets through.
func (m *Top) rows() []monitor.Row {
	f := strings.ToLower(strings.TrimSpace(m.filter.Value()))
	var out []monitor.Row
	for _, r := range m.frame.Rows {
		if f == "" || strings.Contains(strings.ToLower(r.Model), f) {
			out = append(out, r)
		}
	}
	return out
}

func (m *Top) selectedRow() (monitor.Row, bool) {
	for _, r := range m.rows() {
		if r.Key == m.selected {
			return r, true
		}
	}
	return monitor.Row{}, false
}

// View draws the dashboard.
func (m *Top) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "infer top"
	return v
}

// Render returns the dashboard as text, sized to the terminal.
func (m *Top) Render() string {
	w, h := max(m.width, 40), max(m.height, 10)
	var body []string
	switch {
	case !m.have:
		body = []string{"", faintStyle.Render("  reading " + strings.Join(m.o.Servers, ", ") + "…")}
	case m.showHelp:
		body = []string{"", m.help.FullHelpView(m.keys.FullHelp())}
	case m.detail:
		body = m.detailView(w, h-3)
	case m.plain:
		body = m.plainView(w)
	default:
		body = append([]string{m.tabs()}, m.panelView(w, h-4)...)
	}
	foot := m.footer(w)
	lines := []string{m.title(w)}
	for _, b := range body {
		lines = append(lines, strings.Split(b, "\n")...)
	}
	if len(lines) > h-1 {
		lines = lines[:h-1]
	}
	for i, l := range lines {
		if lipgloss.Width(l) > w {
			lines[i] = ansi.Truncate(l, w, "")
		}
	}
	if m.plain {
		for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
			lines = lines[:len(lines)-1]
		}
		return strings.Join(lines, "\n") + "\n"
	}
	for len(lines) < h-1 {
		lines = append(lines, "")
	}
	return strings.Join(append(lines, foot), "\n")
}

func (m *Top) title(w int) string {
	servers := fmt.Sprintf("%d servers", len(m.o.Servers))
	if len(m.o.Servers) == 1 {
		servers = m.o.Servers[0]
	}
	left := titleStyle.Render("infer top") + faintStyle.Render(fmt.Sprintf(" · %s · window %v", servers, m.frame.Window.Round(100*time.Millisecond)))
	var right []string
	if m.paused {
		right = append(right, warnStyle.Render("PAUSED"))
	}
	if f := m.filter.Value(); f != "" && !m.filtering {
		right = append(right, "filter: "+f)
	}
	if m.have {
		right = append(right, m.frame.At.Format("15:04:05"))
	}
	r := strings.Join(right, "  ")
	gap := max(w-lipgloss.Width(left)-lipgloss.Width(r), 1)
	return left + strings.Repeat(" ", gap) + r
}

func (m *Top) tabs() string {
	var parts []string
	for i, name := range panelNames {
		if i == m.panel {
			parts = append(parts, selectedStyle.Render(" "+name+" "))
		} else {
			parts = append(parts, faintStyle.Render(" "+name+" "))
		}
	}
	return strings.Join(parts, " ")
}

func (m *Top) footer(w int) string {
	if m.filtering {
		return m.filter.View()
	}
	if m.detail {
		return m.help.ShortHelpView([]key.Binding{m.keys.Back, m.keys.Pause, m.keys.Quit})
	}
	m.help.SetWidth(w)
	return m.help.ShortHelpView(m.keys.ShortHelp())
}

func (m *Top) panelView(w, h int) []string {
	var out []string
	for server, err := range m.frame.Errors {
		out = append(out, badStyle.Render(truncate(fmt.Sprintf("%s: %v", server, err), w)))
	}
	if len(m.rows()) == 0 {
		msg := "no models loaded"
		if m.filter.Value() != "" {
			msg = fmt.Sprintf("no model matches %q", m.filter.Value())
		}
		return append(out, "", faintStyle.Render("  "+msg))
	}
	switch m.panel {
	case panelBudget:
		return append(out, m.budgetPanel(w, h-len(out))...)
	case panelRollouts:
		return append(out, m.rolloutPanel(w)...)
	case panelQuality:
		return append(out, m.qualityPanel()...)
	}
	return append(out, m.modelsPanel(w, h-len(out))...)
}

// column is one column of the models table.
type column struct {
	title string
	width int
	left  bool
	value func(r monitor.Row) string
}

func (m *Top) columns(w int) []column {
	obj := m.o.Objectives
	styled := func(metric string, v float64, text string) string { return judge(obj, metric, v).Render(text) }
	name := func(r monitor.Row) string {
		if len(m.o.Servers) > 1 {
			return r.Model + "@" + host(r.Server)
		}
		return r.Model
	}
	cols := []column{
		{"MODEL", 13, true, name},
		{"VER", 3, true, func(r monitor.Row) string { return r.Version }},
		{"REQ/S", 6, false, func(r monitor.Row) string { return num(r.Rate) }},
		{"P50", 7, false, func(r monitor.Row) string { return styled("p50", r.P50, dur(r.P50)) }},
		{"P95", 7, false, func(r monitor.Row) string { return styled("p95", r.P95, dur(r.P95)) }},
		{"P99", 7, false, func(r monitor.Row) string { return styled("p99", r.P99, dur(r.P99)) }},
		{"ERR", 6, false, func(r monitor.Row) string {
			if r.Requests == 0 {
				return "-"
			}
			return styled("errors", r.ErrorRate, pct(r.ErrorRate))
		}},
		{"QUEUE", 5, false, func(r monitor.Row) string { return num(r.Queue) }},
	}
	wide := w >= 120
	if wide {
		cols[0].width = 22
		cols = append(cols,
			column{"OLDEST", 7, false, func(r monitor.Row) string {
				if r.Queue == 0 {
					return "-"
				}
				return dur(r.OldestAge)
			}},
			column{"INFL", 5, false, func(r monitor.Row) string { return num(r.Inflight) }})
		if slices.ContainsFunc(m.frame.Rows, func(r monitor.Row) bool { return r.Index != nil }) {
			cols = append(cols, memoryColumns(m.frame.At)...)
		}
	}
	cols = append(cols, column{"BATCH", 5, false, func(r monitor.Row) string { return batch(r.MeanBatch) }})
	if wide {
		cols = append(cols, column{"CACHE", 6, false, func(r monitor.Row) string { return pct(r.CacheHitRate) }})
	}
	cols = append(cols, column{"$/1K", 10, false, func(r monitor.Row) string { return usd(r.CostPer1k) }})
	width := func() int {
		used := 1
		for _, c := range cols {
			used += c.width + 1
		}
		return used
	}
	if width() > w { // the memory columns first give way to the cost
		cols = slices.DeleteFunc(cols, func(c column) bool { return c.title == "MEM" || c.title == "IDLE" })
	}
	if wide {
		used := width()
		if spark := min(w-used-1, 40); spark >= 10 {
			cols = append(cols, column{"TREND", spark, true, func(r monitor.Row) string {
				return sparkline(rates(r.Trend), spark)
			}})
		}
	}
	return cols
}

func rates(points []monitor.Point) []float64 {
	out := make([]float64, len(points))
	for i, p := range points {
		out[i] = p.Rate
	}
	return out
}

func p99s(points []monitor.Point) []float64 {
	out := make([]float64, len(points))
	for i, p := range points {
		out[i] = p.P99
	}
	return out
}

func host(server string) string {
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		return u.Host
	}
	return server
}

// PlainFrame renders a frame as text without colour, width columns wide
// and as long as it needs: the snapshot printed where there is no
// terminal.
func PlainFrame(o TopOptions, f monitor.Frame, width int) string {
	m := NewTop(o)
	m.width, m.height, m.plain = width, 1<<16, true
	m.show(f)
	return ansi.Strip(m.Render())
}

// RunPlain prints a plain-text snapshot of the servers every interval,
// count times (0: until ctx ends). The first comes after one interval, so
// that it already has a window to show.
func RunPlain(ctx context.Context, w io.Writer, o TopOptions, width, count int) error {
	if o.Poll == nil {
		return errors.New("plain snapshots need something to poll")
	}
	o.Poll(ctx) // the window's start
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for n := 0; count == 0 || n < count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if _, err := io.WriteString(w, PlainFrame(o, o.Poll(ctx), width)+"\n"); err != nil {
			return err
		}
	}
	return nil
}
