package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/webhookserver/adapters/bananatech"
	"github.com/cardplane/cardplane/webhookserver/adapters/upay"
	"github.com/cardplane/cardplane/webhookserver/spool"
)

const censusDestinationSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// teams are two tenants of one cardplane: team B's UPay endpoint has a destination and rate limit, team A's
// members are the attackers where an attack needs a tenant.
type teams struct {
	a, b *cardsv1alpha1.WebhookEndpoint
}

func newTeams(t *testing.T, s *site) *teams {
	t.Helper()
	tm := &teams{a: newUPayEndpoint(t, "census-a"), b: newUPayEndpoint(t, "census-b")}
	labelledSecret(t, tm.b.Namespace, "ledger", true, map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: censusDestinationSecret})
	before := tm.b.DeepCopy()
	tm.b.Spec.CardLabels = map[string]cardsv1alpha1.LabelValue{"team": "growth"}
	tm.b.Spec.RateLimit = &cardsv1alpha1.RateLimit{RequestsPerSecond: 200, Burst: 200}
	tm.b.Spec.Destinations = []cardsv1alpha1.Destination{{Name: "ledger", URL: s.deliveries.url,
		SecretRef: cardsv1alpha1.LocalObjectReference{Name: "ledger"}}}
	if err := env.Client.Patch(context.Background(), tm.b, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []*cardsv1alpha1.WebhookEndpoint{tm.a, tm.b} {
		if !waitFor(t, 30*time.Second, ep.Namespace+" Ready", s.accepting(ep)) {
			t.FailNow()
		}
	}
	return tm
}

// censusRotation: the serving certificate is renewed on disk (cert-manager); the next handshake on the
// receiver and on the review API presents the new one, without a restart.
func censusRotation(t *testing.T, s *site, _ *teams) censusRow {
	for _, addr := range []string{s.receiver, s.review} {
		if serial, err := s.pki.served(addr); serial != 1 {
			t.Fatalf("%s serves certificate %d (%v), want 1", addr, serial, err)
		}
	}
	renewed := time.Now()
	s.pki.issue(t, s.certDir, 2)
	handled := 0
	for _, addr := range []string{s.receiver, s.review} {
		if waitFor(t, 30*time.Second, addr+" serving the renewed certificate", func() bool { serial, _ := s.pki.served(addr); return serial == 2 }) {
			handled++
		}
	}
	return censusRow{attack: "serving certificate renewed on disk (receiver, review API)", attempts: 2, handled: handled,
		how: fmt.Sprintf("next handshakes presented the new certificate after %s, no restart", time.Since(renewed).Round(time.Millisecond))}
}

// censusFlood: unsigned junk from one address at team B's endpoint while UPay keeps calling from another.
func censusFlood(t *testing.T, s *site, tm *teams) censusRow {
	n := 10000 * censusScale()
	path := "/webhooks/" + tm.b.Namespace + "/" + tm.b.Name
	counts := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				h := http.Header{upay.HeaderSign: {"forged"}, upay.HeaderTimestamp: {fmt.Sprint(time.Now().UnixMilli())}}
				status, _ := s.post(s.attacker, path, h, []byte(upayStatus(fmt.Sprint("JUNK-", i), "1", fmt.Sprint("junk-", i), time.Now())))
				mu.Lock()
				counts[status]++
				mu.Unlock()
			}
		}()
	}
	const signed = 100
	refusedSigned := 0
	for i := range signed {
		if status, body := s.upay(tm.b, upayStatus(fmt.Sprint("FL-", i), "1", fmt.Sprint("fl-", i), time.Now()), ""); status != http.StatusOK {
			refusedSigned++
			t.Errorf("signed callback %d during the flood: %d %s", i, status, body)
		}
	}
	wg.Wait()
	lost := signed
	waitFor(t, 30*time.Second, "the signed callbacks applied", func() bool {
		lost = 0
		for i := range signed {
			if !lastEventIs(t, tm.b.Namespace, tm.b, fmt.Sprint("FL-", i), fmt.Sprint("fl-", i)) {
				lost++
			}
		}
		return lost == 0
	})
	junk := 0
	list := &cardsv1alpha1.CardList{}
	_ = env.Client.List(context.Background(), list, client.InNamespace(tm.b.Namespace))
	for _, c := range list.Items {
		if strings.HasPrefix(c.Spec.ProviderCardID, "JUNK-") {
			junk++
		}
	}
	return censusRow{attack: fmt.Sprintf("%d unsigned requests from one address", n), attempts: n,
		handled: counts[http.StatusUnauthorized] + counts[http.StatusTooManyRequests], lost: lost + refusedSigned, foreign: junk,
		how: fmt.Sprintf("%d×401, then %d×429 unread; %d signed callbacks from the provider meanwhile: %d refused, all applied",
			counts[http.StatusUnauthorized], counts[http.StatusTooManyRequests], signed, refusedSigned)}
}

// censusSquatting: someone who may create Cards in team B's namespace takes the readable name of a card not
// seen yet and its 32-bit hashed name of before (both computable from public facts).
func censusSquatting(t *testing.T, s *site, tm *teams) censusRow {
	ctx := context.Background()
	sum := sha256.Sum256([]byte(tm.b.Namespace + "/" + tm.b.Name + "/SQ-1"))
	taken := []string{"upay-sq-1", "upay-sq-1-" + hex.EncodeToString(sum[:4])}
	for _, name := range taken {
		squat := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: tm.b.Namespace, Name: name},
			Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: tm.b.Namespace, Name: "squatter"},
				Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: "SQ-1"}}
		if err := env.Client.Create(ctx, squat); err != nil {
			t.Fatal(err)
		}
	}
	status, body := s.upay(tm.b, upayStatus("SQ-1", "3", "sq-1", time.Now()), "")
	applied := status == http.StatusOK && waitFor(t, 15*time.Second, "SQ-1 applied", func() bool { return lastEventIs(t, tm.b.Namespace, tm.b, "SQ-1", "sq-1") })
	row := censusRow{attack: "card names taken ahead (readable and 32-bit hashed)", attempts: len(taken), how: fmt.Sprintf("callback answered %d %s", status, body)}
	if applied {
		row.handled = len(taken)
		row.how = "the card was written under its 64-bit name keyed by the endpoint's UID: " + cardOf(t, tm.b.Namespace, tm.b, "SQ-1").Name
	} else {
		row.lost = 1
	}
	return row
}

// upayAuthorization sends a UPay CC_AUTHORIZATION and returns the answer ("approve" or "decline").
func upayAuthorization(t *testing.T, s *site, ep *cardsv1alpha1.WebhookEndpoint, card, id, amount, requestID string) string {
	t.Helper()
	body := fmt.Sprintf(`{"event":"CC_AUTHORIZATION","orderNo":"O-%s","timestamp":%d,"detail":{"cardId":%q,"amount":%q,"currency":"USD","merchantMcc":"5411","transactionId":"T-%s","authorizationId":"A-%s","transactionChannel":"ECOMMERCE"}}`,
		id, time.Now().UnixMilli(), card, amount, id, id)
	status, answer := s.upay(ep, body, requestID)
	if status != http.StatusOK {
		t.Fatalf("authorization %s answered %d %s", id, status, answer)
	}
	return answer
}

// censusRequestIDReuse: UPay's request ID header is not signed; a verified request reusing a seen ID with
// another body must be applied (a status) or decided (an authorization) on its own.
func censusRequestIDReuse(t *testing.T, s *site, tm *teams) censusRow {
	for i, c := range []string{"RID-1", "RID-2"} {
		if status, body := s.upay(tm.b, upayStatus(c, "1", strings.ToLower(c), time.Now()), "census-reused-id"); status != http.StatusOK {
			t.Fatalf("callback %d: %d %s", i, status, body)
		}
	}
	applied := waitFor(t, 15*time.Second, "both callbacks applied", func() bool {
		return lastEventIs(t, tm.b.Namespace, tm.b, "RID-1", "rid-1") && lastEventIs(t, tm.b.Namespace, tm.b, "RID-2", "rid-2")
	})
	putRuleSet(t, tm.b.Namespace, "card-rules", fmt.Sprintf(blockingRules, "decline"))
	probe := 0
	if !waitFor(t, 30*time.Second, "the rule set in force", func() bool {
		probe++
		return upayAuthorization(t, s, tm.b, "PROBE", fmt.Sprint("probe-", probe), "1.00", "") == "approve"
	}) {
		t.FailNow()
	}
	small := upayAuthorization(t, s, tm.b, "AC-1", "ac-1", "10.00", "census-reused-auth")
	large := upayAuthorization(t, s, tm.b, "AC-2", "ac-2", "900.00", "census-reused-auth") // over the 500.00 limit
	row := censusRow{attack: "request ID reused with another body (a status, an authorization)", attempts: 2,
		how: fmt.Sprintf("second status applied: %v; 10.00 answered %s, then 900.00 under the same ID answered %s", applied, small, large)}
	if applied {
		row.handled++
	} else {
		row.lost++
	}
	if large == "decline" {
		row.handled++
	}
	return row
}

// censusBananaTechReplay: a captured BananaTech "card active" message (its envelope carries no time) is sent
// again an hour later, with its occur_time and without one, after the card was frozen.
func censusBananaTechReplay(t *testing.T, s *site, tm *teams) censusRow {
	ctx := context.Background()
	labelledSecret(t, tm.b.Namespace, "bananatech", true, map[string]string{cardsv1alpha1.SecretKeySigningKey: "census-bananatech-key-0123456789"})
	ep := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: tm.b.Namespace, Name: "bananatech"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderBananaTech,
			CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "bananatech"}, BananaTech: &cardsv1alpha1.BananaTechOptions{AESKey: "Raw"}}}
	if err := env.Client.Create(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 30*time.Second, "the BananaTech endpoint Ready", s.accepting(ep)) {
		t.FailNow()
	}
	res, err := endpointconfig.Resolve(ctx, env.Client, ep)
	if err != nil {
		t.Fatal(err)
	}
	send := func(state string, occurred, sent time.Time, withTime bool) (int, string) {
		payload := fmt.Sprintf(`{"type":"CARD_STATUS_CHANGE","data":{"card_id":4242,"status":"SUCCESS","card_status":%q,"occur_time":%d}}`, state, occurred.UnixMilli())
		if !withTime {
			payload = fmt.Sprintf(`{"type":"CARD_STATUS_CHANGE","data":{"card_id":4242,"status":"SUCCESS","card_status":%q}}`, state)
		}
		h, wire, err := bananatech.Encode(res, []byte(payload), sent)
		if err != nil {
			t.Fatal(err)
		}
		return s.post(s.client, "/webhooks/"+ep.Namespace+"/"+ep.Name, h, wire)
	}
	if status, body := send("FROZEN", time.Now(), time.Now(), true); status != http.StatusOK {
		t.Fatalf("the freeze: %d %s", status, body)
	}
	if !waitFor(t, 15*time.Second, "card 4242 Frozen", func() bool {
		c := cardOf(t, ep.Namespace, ep, "4242")
		return c != nil && c.Status.Phase == cardsv1alpha1.CardFrozen
	}) {
		t.FailNow()
	}
	hourAgo := time.Now().Add(-time.Hour)
	withTime, _ := send("ACTIVE", hourAgo, hourAgo, true)
	without, _ := send("ACTIVE", hourAgo, hourAgo, false)
	time.Sleep(time.Second)
	row := censusRow{attack: "BananaTech status replayed an hour later", attempts: 2,
		how: fmt.Sprintf("answered %d (occur_time out of tolerance) and %d (no occur_time); the card stayed Frozen", withTime, without)}
	if c := cardOf(t, ep.Namespace, ep, "4242"); c.Status.Phase == cardsv1alpha1.CardFrozen {
		for _, status := range []int{withTime, without} {
			if status == http.StatusUnauthorized || status == http.StatusBadRequest {
				row.handled++
			}
		}
	}
	return row
}

// setConsent sets (or, with "", removes) team B's namespace consent annotation.
func setConsent(t *testing.T, namespace, from string) {
	t.Helper()
	value := "null"
	if from != "" {
		value = fmt.Sprintf("%q", from)
	}
	patch := client.RawPatch("application/merge-patch+json",
		[]byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, cardsv1alpha1.AnnotationAcceptEndpointsFrom, value)))
	if err := env.Client.Patch(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, patch); err != nil {
		t.Fatal(err)
	}
}

// censusConsent: team A makes an endpoint writing into team B's namespace; B never consented, then consents,
// then withdraws.
func censusConsent(t *testing.T, s *site, tm *teams) censusRow {
	ctx := context.Background()
	sneaky := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: tm.a.Namespace, Name: "sneaky"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, TargetNamespace: tm.b.Namespace,
			CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"}}}
	if err := env.Client.Create(ctx, sneaky); err != nil {
		t.Fatal(err)
	}
	notPermitted := func() bool {
		return readyReason(sneaky) == cardsv1alpha1.ReasonTargetNamespaceNotPermitted && s.probe(sneaky) == http.StatusServiceUnavailable
	}
	if !waitFor(t, 30*time.Second, "the endpoint TargetNamespaceNotPermitted", notPermitted) {
		t.FailNow()
	}
	refused, attempts := 0, 0
	try := func(n int, prefix string) {
		for i := range n {
			attempts++
			if status, _ := s.upay(sneaky, upayStatus(fmt.Sprint(prefix, i), "1", fmt.Sprint(prefix, i), time.Now()), ""); status == http.StatusServiceUnavailable {
				refused++
			}
		}
	}
	try(20, "SN-")
	setConsent(t, tm.b.Namespace, tm.a.Namespace)
	waitFor(t, 30*time.Second, "the endpoint Ready with consent", s.accepting(sneaky))
	consented, _ := s.upay(sneaky, upayStatus("CONSENTED", "1", "consented", time.Now()), "")
	written := waitFor(t, 15*time.Second, "the consented card written", func() bool { return cardOf(t, tm.b.Namespace, sneaky, "CONSENTED") != nil })
	setConsent(t, tm.b.Namespace, "")
	waitFor(t, 30*time.Second, "the endpoint not Ready once consent is withdrawn", notPermitted)
	try(10, "SW-")
	foreign := 0
	list := &cardsv1alpha1.CardList{}
	_ = env.Client.List(ctx, list, client.InNamespace(tm.b.Namespace))
	for _, c := range list.Items {
		if c.Spec.EndpointRef.Namespace == tm.a.Namespace && c.Spec.ProviderCardID != "CONSENTED" {
			foreign++
		}
	}
	if consented != http.StatusOK || !written {
		t.Errorf("with consent the callback was answered %d, card written: %v", consented, written)
	}
	return censusRow{attack: "endpoint targeting another team's namespace", attempts: attempts, handled: refused, foreign: foreign,
		how: fmt.Sprintf("not Ready (%s) without consent: %d callbacks answered 503, nothing written; with consent applied; withdrawn: refused again",
			cardsv1alpha1.ReasonTargetNamespaceNotPermitted, refused)}
}

// censusUnlabelledSecret: team A's endpoints name Secrets of their namespace nobody labelled for cardplane
// (another system's signing key), as credentials and as a destination's signing secret.
func censusUnlabelledSecret(t *testing.T, s *site, tm *teams) censusRow {
	ctx := context.Background()
	labelledSecret(t, tm.a.Namespace, "billing-webhook", false, map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: censusDestinationSecret})
	labelledSecret(t, tm.a.Namespace, "legacy-upay", false, map[string]string{cardsv1alpha1.SecretKeySigningKey: upayKey})
	borrowers := []*cardsv1alpha1.WebhookEndpoint{
		{ObjectMeta: metav1.ObjectMeta{Namespace: tm.a.Namespace, Name: "borrows-destination-secret"},
			Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"},
				Destinations: []cardsv1alpha1.Destination{{Name: "out", URL: s.deliveries.url, SecretRef: cardsv1alpha1.LocalObjectReference{Name: "billing-webhook"}}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: tm.a.Namespace, Name: "borrows-credentials"},
			Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "legacy-upay"}}},
	}
	row := censusRow{attack: "endpoint naming an unlabelled Secret (credentials, destination)",
		how: "credentials: not Ready (SecretNotLabelled), signed callbacks answered 503; destination: DestinationsReady False " +
			"(SecretNotLabelled), callbacks served with the endpoint's own key, nothing signed with the borrowed one"}
	for _, ep := range borrowers {
		if err := env.Client.Create(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	credentials, destination := borrowers[1], borrowers[0]
	row.attempts += 2
	if waitFor(t, 30*time.Second, credentials.Name+" SecretNotLabelled", func() bool {
		return readyReason(credentials) == cardsv1alpha1.ReasonSecretNotLabelled && s.probe(credentials) == http.StatusServiceUnavailable
	}) {
		row.handled++
	}
	if status, _ := s.upay(credentials, upayStatus("BR-1", "1", "br-1", time.Now()), ""); status == http.StatusServiceUnavailable {
		row.handled++
	}
	if cardOf(t, tm.a.Namespace, credentials, "BR-1") != nil {
		row.foreign++
	}
	// A destination's Secret never gates ingestion (the endpoint's own credentials are labelled): the card is
	// written, and the borrowed key signs nothing.
	row.attempts += 2
	if waitFor(t, 30*time.Second, destination.Name+" DestinationsReady SecretNotLabelled", func() bool {
		return conditionReason(destination, cardsv1alpha1.ConditionDestinationsReady) == cardsv1alpha1.ReasonSecretNotLabelled && s.accepting(destination)()
	}) {
		row.handled++
	}
	if status, _ := s.upay(destination, upayStatus("BR-2", "1", "br-2", time.Now()), ""); status == http.StatusOK {
		waitFor(t, 30*time.Second, "the card of a served callback", func() bool { return cardOf(t, tm.a.Namespace, destination, "BR-2") != nil })
		time.Sleep(3 * time.Second) // a delivery, were there one, has left by now
		if s.deliveries.of("BR-2") == 0 {
			row.handled++
		} else {
			row.foreign++
		}
	}
	return row
}

// censusForgedCard: a member of team A creates a Card in A naming team B's endpoint, hoping B's destinations
// get it signed with B's secret.
func censusForgedCard(t *testing.T, s *site, tm *teams) censusRow {
	ctx := context.Background()
	forged := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: tm.a.Namespace, Name: "forged"},
		Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: tm.b.Namespace, Name: tm.b.Name},
			Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: "FORGED-1"}}
	if err := env.Client.Create(ctx, forged); err != nil {
		t.Fatal(err)
	}
	// The card controller writes its conditions meanwhile: retry on conflict, as a determined attacker would.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(forged), forged); err != nil {
			return err
		}
		forged.Status.Phase, forged.Status.StateSequence = cardsv1alpha1.CardActive, 1
		return env.Client.Status().Update(ctx, forged)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A genuine card after it: once that one is delivered, the forged one had its turn.
	if status, body := s.upay(tm.b, upayStatus("REAL-F", "1", "real-f", time.Now()), ""); status != http.StatusOK {
		t.Fatalf("genuine callback: %d %s", status, body)
	}
	waitFor(t, 30*time.Second, "the genuine card delivered", func() bool { return s.deliveries.of("REAL-F") > 0 })
	time.Sleep(2 * time.Second)
	foreign := s.deliveries.of("FORGED-1")
	row := censusRow{attack: "Card forged in one namespace naming another team's endpoint", attempts: 1, foreign: foreign,
		how: fmt.Sprintf("team B's destination received %d deliveries of it (the genuine card after it: %d)", foreign, s.deliveries.of("REAL-F"))}
	if foreign == 0 {
		row.handled = 1
	}
	return row
}

// censusMetadataDestination: team A points a destination at the cloud metadata address, first by allow-listing
// it, then behind the widest allow-list.
func censusMetadataDestination(t *testing.T, s *site, tm *teams) censusRow {
	ctx := context.Background()
	row := censusRow{attack: "destination at the cloud metadata address 169.254.169.254", attempts: 2}
	labelledSecret(t, tm.a.Namespace, "meta", true, map[string]string{cardsv1alpha1.SecretKeyDestinationSecret: censusDestinationSecret})
	dest := []cardsv1alpha1.Destination{{Name: "meta", URL: "http://169.254.169.254/latest/meta-data/", SecretRef: cardsv1alpha1.LocalObjectReference{Name: "meta"},
		Retry: &cardsv1alpha1.RetryPolicy{MaxAttempts: 1}}}
	listed := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: tm.a.Namespace, Name: "metadata-listed"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"},
			DestinationPolicy: &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{"169.254.169.254/32"}}, Destinations: dest}}
	err := env.Client.Create(ctx, listed)
	if apierrors.IsInvalid(err) {
		row.handled++
	}
	wide := &cardsv1alpha1.WebhookEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: tm.a.Namespace, Name: "metadata-wide"},
		Spec: cardsv1alpha1.WebhookEndpointSpec{Provider: cardsv1alpha1.ProviderUPay, CredentialsRef: &cardsv1alpha1.LocalObjectReference{Name: "creds"},
			DestinationPolicy: &cardsv1alpha1.DestinationPolicy{AllowedCIDRs: []string{"0.0.0.0/0"}}, Destinations: dest}}
	if err := env.Client.Create(ctx, wide); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the endpoint Ready", s.accepting(wide))
	if status, body := s.upay(wide, upayStatus("META-1", "1", "meta-1", time.Now()), ""); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, body)
	}
	var lastError string
	if waitFor(t, 30*time.Second, "the delivery refused", func() bool {
		ep := &cardsv1alpha1.WebhookEndpoint{}
		if env.Client.Get(ctx, client.ObjectKeyFromObject(wide), ep) == nil {
			for _, d := range ep.Status.Destinations {
				lastError = d.LastError
			}
		}
		return strings.Contains(lastError, "not public")
	}) {
		row.handled++
	}
	row.how = fmt.Sprintf("allow-listing it refused by the API server (%v); under 0.0.0.0/0 the dial was refused: %q", apierrors.ReasonForError(err), lastError)
	return row
}

// censusPoisonedSpool: during an API-server outage a callback the API server will refuse for good (a
// ResourceQuota) is spooled first, then one update for each of n cards.
func censusPoisonedSpool(t *testing.T, s *site, _ *teams) censusRow {
	ctx := context.Background()
	q := newUPayEndpoint(t, "census-q")
	if !waitFor(t, 30*time.Second, "the endpoint Ready", s.accepting(q)) {
		t.FailNow()
	}
	n := 100 * censusScale()
	t0 := time.Now().Add(-time.Hour)
	for i := range n {
		if status, body := s.upay(q, upayStatus(fmt.Sprint("Q-", i), "1", fmt.Sprint("q-open-", i), t0), ""); status != http.StatusOK {
			t.Fatalf("card %d: %d %s", i, status, body)
		}
	}
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: q.Namespace, Name: "cards"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/cards.cards.cardplane.io": *resource.NewQuantity(int64(n), resource.DecimalSI)}}}
	if err := env.Client.Create(ctx, quota); err != nil {
		t.Fatal(err)
	}
	// No quota controller runs here: its status is set by hand, as the controller would.
	quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: quota.Spec.Hard}
	if err := env.Client.Status().Update(ctx, quota); err != nil {
		t.Fatal(err)
	}
	if !waitFor(t, 15*time.Second, "the quota in force", func() bool {
		probe := &cardsv1alpha1.Card{ObjectMeta: metav1.ObjectMeta{Namespace: q.Namespace, GenerateName: "probe-"},
			Spec: cardsv1alpha1.CardSpec{EndpointRef: cardsv1alpha1.NamespacedObjectReference{Namespace: q.Namespace, Name: "none"},
				Provider: cardsv1alpha1.ProviderUPay, ProviderCardID: "PROBE"}}
		err := env.Client.Create(ctx, probe)
		if err == nil {
			_ = env.Client.Delete(ctx, probe)
		}
		return apierrors.IsForbidden(err)
	}) {
		t.FailNow()
	}
	s.proxy.Cut()
	acked := 0
	if status, _ := s.upay(q, upayStatus("Q-NEW", "1", "q-poison", t0.Add(time.Minute)), ""); status == http.StatusOK {
		acked++
	}
	for i := range n {
		if status, _ := s.upay(q, upayStatus(fmt.Sprint("Q-", i), "3", fmt.Sprint("q-good-", i), t0.Add(2*time.Minute)), ""); status == http.StatusOK {
			acked++
		}
	}
	s.proxy.Restore()
	lost := n
	waitFor(t, 60*time.Second, "the good events applied", func() bool {
		lost = 0
		for i := range n {
			if !lastEventIs(t, q.Namespace, q, fmt.Sprint("Q-", i), fmt.Sprint("q-good-", i)) {
				lost++
			}
		}
		return lost == 0
	})
	row := censusRow{attack: fmt.Sprintf("poisoned spool entry ahead of %d good events", n), attempts: 1, lost: lost + (n + 1 - acked)}
	var out []byte
	var err error
	listed := waitFor(t, 15*time.Second, "the dead letter listed", func() bool {
		out, err = exec.Command(s.proc.bin, "spool", "list", "--dir", s.spoolDir).CombinedOutput()
		return strings.Contains(string(out), "q-poison") && strings.Contains(string(out), "exceeded quota")
	})
	if !listed {
		t.Logf("cardplane spool list (%v):\n%s", err, out)
	}
	// The operator raises the quota and re-applies the dead letter.
	if err := env.Client.Delete(ctx, quota); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the quota gone", func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(quota), quota))
	})
	if out, err := exec.Command(s.proc.bin, "spool", "requeue", "--all", "--dir", s.spoolDir).CombinedOutput(); err != nil {
		t.Fatalf("spool requeue: %v\n%s", err, out)
	}
	requeued := waitFor(t, 30*time.Second, "the dead letter applied after the requeue", func() bool { return lastEventIs(t, q.Namespace, q, "Q-NEW", "q-poison") })
	if listed && requeued {
		row.handled = 1
	} else {
		row.lost++
	}
	row.how = fmt.Sprintf("%d acknowledged during the outage; the refused one became a dead letter (cardplane spool list), the %d behind it applied; requeued after the quota was raised: applied %v",
		acked, n, requeued)
	return row
}

// spooledStatuses cuts the API server off and sends one Frozen status for each of n new cards; it returns how
// many were acknowledged.
func spooledStatuses(t *testing.T, s *site, ep *cardsv1alpha1.WebhookEndpoint, prefix string, n int) int {
	s.proxy.Cut()
	acked := 0
	for i := range n {
		if status, _ := s.upay(ep, upayStatus(fmt.Sprint(prefix, i), "3", fmt.Sprint(prefix, i), time.Now()), ""); status == http.StatusOK {
			acked++
		}
	}
	return acked
}

// missing counts the cards prefix0..n-1 whose status was not applied.
func missing(t *testing.T, ep *cardsv1alpha1.WebhookEndpoint, prefix string, n int) int {
	lost := 0
	for i := range n {
		if !lastEventIs(t, ep.Namespace, ep, fmt.Sprint(prefix, i), fmt.Sprint(prefix, i)) {
			lost++
		}
	}
	return lost
}

// censusDeletionDrained: the pod is deleted (SIGTERM) with events in its spool just after the API server came
// back; nothing replaces it before the check.
func censusDeletionDrained(t *testing.T, s *site, tm *teams) censusRow {
	n := 50 * censusScale()
	acked := spooledStatuses(t, s, tm.b, "PD-", n)
	s.proxy.Restore()
	before, _ := spool.Inspect(s.spoolDir)
	exited := s.proc.terminate(60 * time.Second)
	lost := n
	waitFor(t, 5*time.Second, "the drained events visible", func() bool { lost = missing(t, tm.b, "PD-", n); return lost == 0 })
	s.start()
	row := censusRow{attack: "pod deleted with a full spool, API server back", attempts: 1, lost: lost + n - acked,
		how: fmt.Sprintf("%d acknowledged during an outage, %d still spooled at SIGTERM; exited on its own: %v; applied before exit: %d", acked, len(before.Pending), exited, n-lost)}
	if exited && lost == 0 {
		row.handled = 1
	}
	return row
}

// censusDeletionSuccessor: the pod is deleted while the API server is still unreachable; its successor mounts
// the same volume (the chart's spool.persistence) and replays it.
func censusDeletionSuccessor(t *testing.T, s *site, tm *teams) censusRow {
	n := 50 * censusScale()
	acked := spooledStatuses(t, s, tm.b, "PS-", n)
	exited := s.proc.terminate(60 * time.Second)
	left, err := spool.Inspect(s.spoolDir)
	if err != nil {
		t.Fatal(err)
	}
	s.proxy.Restore()
	s.start()
	lost := n
	waitFor(t, 60*time.Second, "the successor replays the volume", func() bool { lost = missing(t, tm.b, "PS-", n); return lost == 0 })
	row := censusRow{attack: "pod deleted with a full spool, API server down", attempts: 1, lost: lost + n - acked,
		how: fmt.Sprintf("%d acknowledged; exited on its own: %v, leaving %d on the volume; the successor on the same volume applied %d", acked, exited, len(left.Pending), n-lost)}
	if exited && lost == 0 && len(left.Pending) == n {
		row.handled = 1
	}
	return row
}

// censusForeignScan: every Card and CardTransaction cardplane wrote in the census's namespaces lies in its
// endpoint's namespace, or in one that consented (the one consented card).
func censusForeignScan(t *testing.T, tm *teams) censusRow {
	ctx := context.Background()
	row := censusRow{attack: "scan: every object cardplane wrote, in its tenant's namespace"}
	// Objects cardplane wrote, not only the status of (its controllers write conditions on the attackers'
	// squatted and forged Cards too).
	ours := func(o metav1.Object) bool {
		for _, m := range o.GetManagedFields() {
			if strings.HasPrefix(m.Manager, "cardplane-") && m.Subresource == "" {
				return true
			}
		}
		return false
	}
	var out []string
	cards := &cardsv1alpha1.CardList{}
	if err := env.Client.List(ctx, cards); err != nil {
		t.Fatal(err)
	}
	for _, c := range cards.Items {
		if !strings.HasPrefix(c.Namespace, "census-") || !ours(&c) {
			continue
		}
		row.attempts++
		if c.Namespace == c.Spec.EndpointRef.Namespace || (c.Spec.ProviderCardID == "CONSENTED" && c.Namespace == tm.b.Namespace) {
			row.handled++
		} else {
			row.foreign++
			out = append(out, "card "+c.Namespace+"/"+c.Name)
		}
	}
	txns := &cardsv1alpha1.CardTransactionList{}
	if err := env.Client.List(ctx, txns); err != nil {
		t.Fatal(err)
	}
	for _, x := range txns.Items {
		if !strings.HasPrefix(x.Namespace, "census-") || !ours(&x) {
			continue
		}
		row.attempts++
		if owner, _, _ := strings.Cut(x.Annotations[cardsv1alpha1.AnnotationEndpoint], "/"); owner == x.Namespace {
			row.handled++
		} else {
			row.foreign++
			out = append(out, "transaction "+x.Namespace+"/"+x.Name)
		}
	}
	row.how = fmt.Sprintf("%d Cards and CardTransactions created by cardplane, %d outside their endpoint's namespace without consent", row.attempts, row.foreign)
	if len(out) > 0 {
		row.how += fmt.Sprintf(", e.g. %v", out[:min(len(out), 3)])
	}
	return row
}
