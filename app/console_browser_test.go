package app_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/crescendo-hq/crescendo/bots"
	"github.com/crescendo-hq/crescendo/store"
)

// chromiumPath finds Debian's Chromium (or another Chrome). Without one the
// browser test skips on a developer's machine and fails in CI, where .ci/run
// installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found: CI must run the console's browser test (.ci/run installs Debian's chromium)")
	}
	t.Skip("no Chromium found (apt-get install chromium); the console's browser test runs in CI")
	return ""
}

// browser is a headless Chromium tab on the console, saving a screenshot of
// each page it is asked to into dir.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	// Start the browser now: in CI a Chromium that cannot start fails here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium %s: %v", exe, err)
	}
	t.Logf("screenshots in %s", dir)
	return &browser{t: t, ctx: ctx, dir: dir}
}

// do runs actions in the tab; what says what failed.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	// Each step gets its own deadline, so a wait that never ends fails
	// that step, with a screenshot of what the page showed instead.
	ctx, cancel := context.WithTimeout(b.ctx, 25*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed")
		b.t.Fatalf("%s: %v (the page is in failed.png)", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// poll waits until a JavaScript predicate holds.
func (b *browser) poll(what, expr string, timeout time.Duration) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout)))
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// shot saves a full-page screenshot as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// text is the text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(css(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// checkLabels fails the test for any form control on the page without a label.
func (b *browser) checkLabels(page string) {
	b.t.Helper()
	unlabelled := eval[[]string](b, `Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
		.filter(el => !(el.labels && el.labels.length > 0)).map(el => el.outerHTML.slice(0, 120))`)
	if len(unlabelled) > 0 {
		b.t.Errorf("%s: form controls without a label: %v", page, unlabelled)
	}
	controls := eval[int](b, `document.querySelectorAll('input:not([type=hidden]), select, textarea').length`)
	b.t.Logf("%s: %d form controls, all labelled", page, controls)
}

// checkSkipLink presses Tab on a fresh page and wants the skip link focused,
// on screen and outlined, then follows it to the main content.
func (b *browser) checkSkipLink(page string) {
	b.t.Helper()
	b.do("tabbing", chromedp.KeyEvent("\t"))
	focused := eval[string](b, `document.activeElement.className`)
	left := eval[float64](b, `document.activeElement.getBoundingClientRect().left`)
	if focused != "skip" || left < 0 {
		b.t.Errorf("%s: the first Tab focuses %q at x=%v, want the visible skip link", page, focused, left)
	}
	if o := eval[string](b, `getComputedStyle(document.activeElement).outlineStyle`); o == "none" || o == "" {
		b.t.Errorf("%s: the focused skip link has no outline", page)
	}
	b.do("following the skip link", chromedp.KeyEvent("\r"))
	if id := eval[string](b, `document.activeElement.id`); id != "main" {
		b.t.Errorf("%s: the skip link moved focus to %q, want main", page, id)
	}
}

func TestConsoleInARealBrowser(t *testing.T) {
	e := newEnv(t)
	early := fan{id: uuid.New(), user: "u-early", phone: "+14155550111"}
	late := fan{id: uuid.New(), user: "u-late", email: "late@example.com"}
	var marketerToken, viewerToken string
	a := e.start(func(ctx context.Context, st *store.Store) error {
		if err := seedCatalog(ctx, st, []fan{early, late}); err != nil {
			return err
		}
		if _, err := st.CreateOrganization(ctx, "acme", "Acme Records"); err != nil {
			return err
		}
		if err := st.AssignPerformer(ctx, "acme", "aurora"); err != nil {
			return err
		}
		var err error
		if _, marketerToken, err = st.CreateToken(ctx, "acme", store.RoleMarketer, "console test"); err != nil {
			return err
		}
		if _, viewerToken, err = st.CreateToken(ctx, "acme", store.RoleViewer, "console viewer"); err != nil {
			return err
		}
		// A marketer's override: the explanation shows the class and why.
		_, err = st.SetBotOverride(ctx, late.id, bots.Suspect, "watching a resale pattern", "console test")
		return err
	})
	defer a.Shutdown(context.Background())
	base := "http://" + a.HTTPAddr

	// Activity before the console opens: the early fan crosses the presale
	// rule's threshold (12 minutes against 10), which the dry run replays.
	now := time.Now().UTC().Truncate(time.Second)
	listens := func(f fan, from time.Time) []kafka.Message {
		var msgs []kafka.Message
		for i := range 4 {
			msgs = append(msgs, listen(f.user, fmt.Sprintf("%s-%d", f.user, i), from.Add(time.Duration(i)*time.Minute), "aurora", 3))
		}
		return msgs
	}
	e.publish(listens(early, now.Add(-10*time.Minute))...)
	eventually(t, 30*time.Second, "the early fan's offer", func() bool {
		sum, err := a.Store.SummarizeOffers(t.Context())
		return err == nil && sum.ByStatus[store.OfferIssued]+sum.ByStatus[store.OfferDelivered] >= 1
	})

	b := newBrowser(t)
	start := time.Now()

	// Signing in: a page needs a session, a wrong token is refused.
	b.do("opening the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(css(`#token`)))
	b.checkSkipLink("sign-in")
	b.checkLabels("sign-in")
	b.do("signing in with a wrong token", chromedp.SendKeys(css(`#token`), "cr_wrong"),
		chromedp.Submit(css(`#token`)), chromedp.WaitVisible(css(`#signin-error`)))
	b.shot("01-signin-refused")
	b.do("signing in", chromedp.SetValue(css(`#token`), marketerToken),
		chromedp.Submit(css(`#token`)), chromedp.WaitVisible(css(`#timeline-h`)))
	if got := b.text(`#shares-h + p`); !strings.Contains(got, "classified fans") {
		t.Errorf("overview shares: %q, want the count of classified fans", got)
	}
	b.shot("02-overview")

	// A new rule with a CEL error: the API's message, placed on its line.
	b.do("opening a new rule", chromedp.Navigate(base+"/console/rules/new"), chromedp.WaitVisible(css(`#source`)))
	b.checkLabels("new rule")
	const broken = `name: Encore presale
performer_id: aurora
show_id: roundhouse
tiers:
  - threshold: 5
    perks: [presale]
condition: |
  index.value >= 5 &&
    fann.friend_count != 0
channels: [push, sms, email]
lifetime: 48h
`
	b.do("writing a rule with an error", chromedp.SetValue(css(`#rule-id`), "encore"),
		chromedp.SetValue(css(`#source`), broken),
		chromedp.Click(css(`form.editor button[type=submit]`)),
		chromedp.WaitVisible(css(`#problems`)))
	problems := b.text(`#problems`)
	if !strings.Contains(problems, "condition") || !strings.Contains(problems, "undeclared reference to 'fann'") {
		t.Errorf("problems shown: %q, want the condition's CEL error", problems)
	}
	if ex := b.text(`#problems .excerpt`); !strings.Contains(ex, "9 │") || !strings.Contains(ex, "fann.friend_count") {
		t.Errorf("problem excerpt %q, want line 9 where fann is", ex)
	}
	if v := eval[string](b, `document.getElementById('source').getAttribute('aria-invalid')`); v != "true" {
		t.Errorf("the editor's aria-invalid is %q after a refusal", v)
	}
	if id := eval[string](b, `document.activeElement.id`); id != "problems" {
		t.Errorf("focus after a refusal is on %q, want the problems", id)
	}
	b.shot("03-rule-error")

	// Going to the problem puts the caret on its line in the editor.
	b.do("going to the problem", chromedp.Click(css(`#problems button.goto`)))
	if line := eval[int](b, `(() => { const t = document.getElementById('source'); return t.value.slice(0, t.selectionStart).split('\n').length; })()`); line != 9 {
		t.Errorf("the caret went to line %d, want 9", line)
	}

	fixed := strings.Replace(broken, "  index.value >= 5 &&\n    fann.friend_count != 0\n", "  index.value >= 5\n", 1)
	b.do("fixing the rule", chromedp.SetValue(css(`#source`), fixed),
		chromedp.Click(css(`form.editor button[type=submit]`)),
		chromedp.WaitVisible(css(`#notice`)))
	if n := b.text(`#notice`); !strings.Contains(n, "created as version 1") {
		t.Errorf("notice after creating: %q", n)
	}
	b.checkLabels("rule")
	b.shot("04-rule-created")

	// The dry run replays the early fan's listening: one would-be offer.
	b.do("dry-running", chromedp.SetValue(css(`#since`), "1h"),
		chromedp.Click(css(`form.inline button[type=submit]`)),
		chromedp.WaitVisible(css(`#dry-run-result`)))
	if got := b.text(`#dry-run-result`); !strings.Contains(got, "would have issued 1 offer ") {
		t.Errorf("dry run result: %q, want 1 offer", got)
	}
	b.shot("05-dry-run")

	// The live view: the backlog first, then offers made while it is open,
	// issued and then delivered, without reloading the page.
	b.do("opening the live view", chromedp.Navigate(base+"/console/live"), chromedp.WaitVisible(css(`#live-rows tr`)))
	b.poll("waiting for the stream", `document.getElementById('live-status').textContent.startsWith('Live')`, 10*time.Second)
	eval[string](b, `window.__loaded = 'same page'`)
	e.publish(listens(late, now.Add(-5*time.Minute))...)
	lateRow := fmt.Sprintf(`#live-rows tr td a[href^="/console/fans/%s"]`, late.id)
	b.do("watching the late fan's offer arrive", chromedp.WaitVisible(css(lateRow)))
	b.poll("watching it be delivered", fmt.Sprintf(`Array.from(document.querySelectorAll('#live-rows tr'))
		.some(tr => tr.querySelector('a[href^="/console/fans/%s"]') && tr.dataset.status === 'delivered')`, late.id), 20*time.Second)
	if got := eval[string](b, `window.__loaded`); got != "same page" {
		t.Errorf("the live view reloaded the page (%q)", got)
	}
	b.shot("06-live")

	// One click from the offer to the fan's explanation.
	b.do("opening the explanation", chromedp.Click(css(lateRow)), chromedp.WaitVisible(css(`#why-h`)))
	if why := b.text(`#why-h + div`); !strings.Contains(why, "presale") || !strings.Contains(why, "encore") || !strings.Contains(why, "offer") {
		t.Errorf("why: %q, want the offers of both rules", why)
	}
	if items := b.text(`#items-h + div`); !strings.Contains(items, "u-late-3") {
		t.Errorf("contributions: %q, want the listens that earned the index", items)
	}
	if got := b.text(`#class-h + p`); !strings.Contains(got, "suspect") {
		t.Errorf("classification: %q, want the marketer's suspect", got)
	}
	if got := b.text(`#class-h ~ ul`); !strings.Contains(got, "watching a resale pattern") {
		t.Errorf("classification reasons: %q, want the override's note", got)
	}
	b.shot("07-fan")

	// Plots on the rule page: funnel, distribution with thresholds, timeline.
	b.do("opening the presale rule", chromedp.Navigate(base+"/console/rules/presale"), chromedp.WaitVisible(css(`#funnel-h`)))
	funnel := eval[string](b, `Array.from(document.querySelectorAll('#funnel-t1 tbody tr'))
		.map(tr => tr.querySelector('th').textContent + ' ' + tr.querySelector('td.n').textContent).join(', ')`)
	if funnel != "crossed 2, eligible 2, offered 2, delivered 2, opened 0, redeemed 0" {
		t.Errorf("presale funnel: %q, want 2 fans through to delivered", funnel)
	}
	if got := eval[string](b, `document.getElementById("dist-d").textContent`); !strings.Contains(got, "tier 1: 10 (2 fans at or above)") {
		t.Errorf("distribution: %q, want both fans above tier 1", got)
	}
	b.shot("08-rule-plots")

	// Phone-sized screens: nothing wider than the screen.
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	for _, p := range []struct{ path, wait, name string }{
		{"/console/", "#timeline-h", "09-phone-overview"},
		{"/console/rules", "h1", "10-phone-rules"},
		{"/console/rules/encore", "#edit-h", "11-phone-rule"},
		{"/console/live", "#live-rows tr", "12-phone-live"},
	} {
		b.do("opening "+p.path+" on a phone", chromedp.Navigate(base+p.path), chromedp.WaitVisible(css(p.wait)))
		if eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Errorf("%s is wider than a phone's screen", p.path)
		}
		b.shot(p.name)
	}
	b.do("desktop viewport", chromedp.EmulateViewport(1280, 800))

	// A viewer reads but cannot edit: no form, and the server refuses a post.
	b.do("signing out", chromedp.Navigate(base+"/console/rules"), chromedp.Click(css(`.who button`)),
		chromedp.WaitVisible(css(`#token`)))
	b.do("signing in as a viewer", chromedp.SetValue(css(`#token`), viewerToken),
		chromedp.Submit(css(`#token`)), chromedp.WaitVisible(css(`#timeline-h`)),
		chromedp.Navigate(base+"/console/rules/encore"), chromedp.WaitVisible(css(`#edit-h`)))
	if n := eval[int](b, `document.querySelectorAll('#source, form[action$="/dry-run"]').length`); n != 0 {
		t.Errorf("a viewer sees %d editing controls", n)
	}
	b.shot("13-viewer-rule")
	status := eval[int](b, `fetch('/console/rules/encore', {method: 'POST', body: new URLSearchParams({
		csrf: document.querySelector('input[name=csrf]').value, source: 'name: taken over'})}).then(r => r.status)`, chromedp.EvalAwaitPromise)
	if status != 403 {
		t.Errorf("a viewer's post answered %d, want 403", status)
	}
	rule, err := a.Store.RuleForOrg(t.Context(), "acme", "encore")
	if err != nil || rule.Version != 1 || rule.Rule.Name != "Encore presale" {
		t.Errorf("after the viewer's post the rule is %+v (%v), want version 1 unchanged", rule, err)
	}
	t.Logf("browser part took %s", time.Since(start).Round(time.Millisecond))
}
