package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fhirgw/fhirgw/envelope"
	"github.com/fhirgw/fhirgw/gateway"
	"github.com/fhirgw/fhirgw/router"
	"github.com/fhirgw/fhirgw/testing/brokertest"
	"github.com/fhirgw/fhirgw/testing/gatewaytest"
	"github.com/fhirgw/fhirgw/testing/samplefiller"
	"github.com/fhirgw/fhirgw/testing/wait"
	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpConfig is authConfig with AMQP users for both partners (unique per
// test, as users are broker-wide).
func amqpConfig(t *testing.T) gateway.Config {
	cfg := authConfig()
	suffix := fmt.Sprint(time.Now().UnixNano())
	cfg.Partners[0].AMQPUser = "st-marys-" + suffix
	cfg.Partners[1].AMQPUser = "lab-" + suffix
	return cfg
}

// ooOf decodes an OperationOutcome body.
func ooOf(t *testing.T, body []byte) envelope.OperationOutcome {
	t.Helper()
	var oo envelope.OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("want an OperationOutcome, got %s", body)
	}
	return oo
}

// An AMQP placer's order reaches the filler; the AMQP filler's
// acknowledgement and progress come back to the placer's reply queue with
// its correlation_id, and the Task completes.
func TestAMQPPlacerAndAMQPFiller(t *testing.T) {
	s := gatewaytest.Start(t, amqpConfig(t))
	placer := s.Partner(t, "st-marys")
	lab := s.Partner(t, "lab-partner")
	placer.Send(t, fixture(t, "r4/lab-order.json"), "conv-1")

	accepted := placer.Await(t, "conv-1", 10*time.Second)
	if gatewaytest.Status(accepted) != http.StatusAccepted || !strings.HasPrefix(accepted.ContentType, "application/fhir+json") {
		t.Fatalf("first answer: status %d, content type %q: %s", gatewaytest.Status(accepted), accepted.ContentType, accepted.Body)
	}
	taskURL, _ := accepted.Headers[router.HeaderLocation].(string)
	if !strings.Contains(taskURL, "/Task/") {
		t.Fatalf("the first answer names no Task: %v", accepted.Headers)
	}
	if oo := ooOf(t, accepted.Body); oo.Issue[0].Code != envelope.IssueInformational {
		t.Errorf("first answer: %s", accepted.Body)
	}

	filler := s.RunFiller(t, samplefiller.Config{AMQPURL: lab.URL, Queue: s.Topology.FillerQueue("lab"), Progress: true,
		Ingress: s.Topology.IngressExchange(), UserID: lab.User})
	var codes []string
	for range 3 {
		d := placer.Await(t, "conv-1", 10*time.Second)
		if gatewaytest.Status(d) != http.StatusOK {
			t.Errorf("pushed answer with status %d", gatewaytest.Status(d))
		}
		msg, err := envelope.NewParser(envelope.Options{}).Parse(d.Body, envelope.R4)
		if err != nil {
			t.Fatalf("pushed answer is no message: %v", err)
		}
		code := ""
		if msg.IsResponse() {
			code = string(msg.Header.Response.Code)
		}
		codes = append(codes, code+"/"+msg.Header.Event.Code)
	}
	if want := "ok/lab-order,/lab-order-progress,/lab-order-progress"; strings.Join(codes, ",") != want {
		t.Errorf("the placer received %v, want %s", codes, want)
	}
	if filler.Received() != 1 {
		t.Errorf("the filler received %d messages", filler.Received())
	}
	if !wait.For(10*time.Second, func() bool { return readTaskAs(t, taskURL, "placer-key").Status == "completed" }) {
		t.Errorf("the Task did not complete: %+v", readTaskAs(t, taskURL, "placer-key"))
	}
	if accepted.Headers[router.HeaderDuplicate] != nil {
		t.Errorf("the first answer is marked a duplicate: %v", accepted.Headers)
	}
	// The same message again: the original answer, marked, and nothing routed.
	placer.Send(t, fixture(t, "r4/lab-order.json"), "conv-2")
	again := placer.Await(t, "conv-2", 10*time.Second)
	if gatewaytest.Status(again) != http.StatusAccepted || again.Headers[router.HeaderDuplicate] != true || again.Headers[router.HeaderLocation] != taskURL {
		t.Errorf("the duplicate's answer: status %d, headers %v", gatewaytest.Status(again), again.Headers)
	}
	time.Sleep(300 * time.Millisecond)
	if filler.Received() != 1 {
		t.Errorf("after the duplicate the filler received %d messages", filler.Received())
	}
}

// An HTTP placer receives an AMQP filler's acknowledgement and progress on
// its callback endpoint.
func TestHTTPPlacerAndAMQPFiller(t *testing.T) {
	s := gatewaytest.Start(t, amqpConfig(t))
	lab := s.Partner(t, "lab-partner")
	endpoint := newPlacer(t)
	r := post(t, s, fixture(t, "r4/lab-order.json"), "async=true&response-url="+url.QueryEscape(endpoint.srv.URL+"/fhir"),
		http.Header{"X-Api-Key": {"placer-key"}})
	if r.Status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.Status, r.Body)
	}
	s.RunFiller(t, samplefiller.Config{AMQPURL: lab.URL, Queue: s.Topology.FillerQueue("lab"), Progress: true,
		Ingress: s.Topology.IngressExchange(), UserID: lab.User})
	if !wait.For(10*time.Second, func() bool { return len(endpoint.received()) == 3 }) {
		t.Fatalf("the placer's endpoint received %d answers, want 3", len(endpoint.received()))
	}
}

// The same messages over HTTP and over AMQP get the same outcome: status,
// and the OperationOutcome's issues.
func TestHTTPAndAMQPGiveTheSameOutcome(t *testing.T) {
	s := gatewaytest.Start(t, amqpConfig(t))
	placer := s.Partner(t, "st-marys")
	result := strings.Replace(string(fixture(t, "r4/lab-order.json")), `"code": "lab-order"`, `"code": "lab-result"`, 1)
	unknown := strings.Replace(string(fixture(t, "r4/lab-order.json")), `"code": "lab-order"`, `"code": "no-such-event"`, 1)
	cases := []struct {
		name         string
		http, amqp   []byte
		status       int
		routedToLabs int
	}{
		{"valid order", withIdentity(t, 101), withIdentity(t, 102), http.StatusAccepted, 2},
		{"not JSON", fixture(t, "invalid/not-json.json"), fixture(t, "invalid/not-json.json"), http.StatusBadRequest, 0},
		{"no event", fixture(t, "invalid/no-event.json"), fixture(t, "invalid/no-event.json"), http.StatusBadRequest, 0},
		{"first entry not a header", fixture(t, "invalid/first-entry-not-header.json"), fixture(t, "invalid/first-entry-not-header.json"), http.StatusBadRequest, 0},
		{"an event the partner may not send", []byte(result), []byte(result), http.StatusForbidden, 0},
		{"an event no route takes", []byte(unknown), []byte(unknown), http.StatusUnprocessableEntity, 0},
		{"a response matching nothing", fixture(t, "r4/lab-order-ack.json"), fixture(t, "r4/lab-order-ack.json"), http.StatusUnprocessableEntity, 0},
	}
	if !strings.Contains(result, "lab-result") || !strings.Contains(unknown, "no-such-event") {
		t.Fatal("the fixture's event code changed; fix the test")
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := post(t, s, tc.http, "async=true", http.Header{"X-Api-Key": {"placer-key"}})
			cid := fmt.Sprintf("same-%d", i)
			placer.Send(t, tc.amqp, cid)
			a := placer.Await(t, cid, 10*time.Second)
			if h.Status != tc.status || gatewaytest.Status(a) != tc.status {
				t.Fatalf("HTTP %d, AMQP %d, want %d: %s | %s", h.Status, gatewaytest.Status(a), tc.status, h.Body, a.Body)
			}
			ho, ao := ooOf(t, h.Body), ooOf(t, a.Body)
			if len(ho.Issue) != len(ao.Issue) {
				t.Fatalf("HTTP issues %s, AMQP issues %s", h.Body, a.Body)
			}
			for j := range ho.Issue {
				hi, ai := ho.Issue[j], ao.Issue[j]
				if hi.Code != ai.Code || hi.Severity != ai.Severity || strings.Join(hi.Expression, ",") != strings.Join(ai.Expression, ",") {
					t.Errorf("issue %d: HTTP %+v, AMQP %+v", j, hi, ai)
				}
			}
			if got := s.Drain(t, "lab", tc.routedToLabs, 2*time.Second); len(got) != tc.routedToLabs {
				t.Errorf("%d messages routed, want %d", len(got), tc.routedToLabs)
			}
		})
	}
}

// Messages from no partner, or that a partner may not send, are answered
// with a rejection (or parked) and never routed.
func TestAMQPRejections(t *testing.T) {
	s := gatewaytest.Start(t, amqpConfig(t))
	placer := s.Partner(t, "st-marys")
	order := fixture(t, "r4/lab-order.json")

	t.Run("no user_id", func(t *testing.T) {
		// Nobody is known to own the reply queue, so the 401 is parked
		// rather than published into a partner's reply queue.
		err := placer.Publish(amqp.Publishing{ContentType: "application/fhir+json", ReplyTo: placer.ReplyTo, CorrelationId: "anon", Body: order,
			Headers: amqp.Table{router.HeaderUserID: placer.User, router.HeaderParkReason: "forged"}})
		if err != nil {
			t.Fatal(err)
		}
		parked := drainQueue(t, s.Topology.IngressDeadQueue(), 1)
		if len(parked) != 1 || !strings.Contains(fmt.Sprint(parked[0].Headers[router.HeaderParkReason]), "no user_id") ||
			parked[0].Headers[router.HeaderUserID] != "" {
			t.Fatalf("parked: %+v", parked)
		}
	})
	t.Run("invalid bundle", func(t *testing.T) {
		placer.Send(t, fixture(t, "invalid/no-source.json"), "invalid")
		a := placer.Await(t, "invalid", 10*time.Second)
		if gatewaytest.Status(a) != http.StatusBadRequest {
			t.Errorf("answer %d: %s", gatewaytest.Status(a), a.Body)
		}
		if oo := ooOf(t, a.Body); len(oo.Issue[0].Expression) == 0 {
			t.Errorf("the rejection names no element: %s", a.Body)
		}
	})
	t.Run("forged user_id", func(t *testing.T) {
		out := confirmerAs(t, placer.URL)
		labUser := s.Config.Partners[1].AMQPUser
		err := out.Publish(t.Context(), s.Topology.IngressExchange(), "", amqp.Publishing{ContentType: "application/fhir+json",
			UserId: labUser, ReplyTo: placer.ReplyTo, CorrelationId: "forged", Body: order})
		if !errors.Is(err, amqp.ErrClosed) {
			t.Fatalf("the broker took a publish with a forged user_id: %v", err)
		}
	})
	t.Run("user of no partner", func(t *testing.T) {
		user := fmt.Sprintf("stranger-%d", time.Now().UnixNano())
		replies := fmt.Sprintf("stranger-replies-%d", time.Now().UnixNano())
		admin := brokertest.Dial(t)
		ch, err := admin.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(replies, false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		brokertest.AddUser(t, user, "pw", brokertest.Permissions{Configure: "^$", Write: "^" + s.Topology.IngressExchange() + "$", Read: "^$"})
		out := confirmerAs(t, brokertest.UserURL(t, user, "pw"))
		err = out.Publish(t.Context(), s.Topology.IngressExchange(), "", amqp.Publishing{ContentType: "application/fhir+json",
			UserId: user, ReplyTo: replies, CorrelationId: "who", Body: order})
		if err != nil {
			t.Fatal(err)
		}
		var got amqp.Delivery
		if !wait.For(10*time.Second, func() bool {
			var ok bool
			got, ok, _ = ch.Get(replies, true)
			return ok
		}) {
			t.Fatal("no answer on the stranger's reply queue")
		}
		if gatewaytest.Status(got) != http.StatusUnauthorized || got.CorrelationId != "who" || ooOf(t, got.Body).Issue[0].Code != "login" {
			t.Errorf("answer %d (%s): %s", gatewaytest.Status(got), got.CorrelationId, got.Body)
		}
		// Nor can a stranger have the gateway write into a partner's reply queue.
		err = out.Publish(t.Context(), s.Topology.IngressExchange(), "", amqp.Publishing{ContentType: "application/fhir+json",
			UserId: user, ReplyTo: placer.ReplyTo, CorrelationId: "spoof", Body: order})
		if err != nil {
			t.Fatal(err)
		}
		if parked := drainQueue(t, s.Topology.IngressDeadQueue(), 1); len(parked) != 1 || parked[0].CorrelationId != "spoof" {
			t.Fatalf("parked: %+v", parked)
		}
	})
	t.Run("a reply_to that is not the partner's", func(t *testing.T) {
		err := placer.Publish(amqp.Publishing{ContentType: "application/fhir+json", UserId: placer.User,
			ReplyTo: s.Topology.FillerQueue("lab"), CorrelationId: "hijack", Body: order})
		if err != nil {
			t.Fatal(err)
		}
		parked := drainQueue(t, s.Topology.IngressDeadQueue(), 1)
		if len(parked) != 1 || !strings.Contains(fmt.Sprint(parked[0].Headers[router.HeaderParkReason]), "reply_to") {
			t.Fatalf("parked: %d", len(parked))
		}
	})
	t.Run("a rejection without reply_to", func(t *testing.T) {
		err := placer.Publish(amqp.Publishing{ContentType: "application/fhir+json", UserId: placer.User, CorrelationId: "nowhere",
			Body: fixture(t, "invalid/no-event.json")})
		if err != nil {
			t.Fatal(err)
		}
		parked := drainQueue(t, s.Topology.IngressDeadQueue(), 1)
		if len(parked) != 1 || fmt.Sprint(parked[0].Headers[router.HeaderStatus]) != "400" || parked[0].Headers[router.HeaderUserID] != placer.User {
			t.Fatalf("parked: %+v", parked)
		}
	})
	if got := s.Drain(t, "lab", 0, time.Second); len(got) != 0 {
		t.Errorf("%d rejected messages were routed", len(got))
	}
}

// confirmerAs connects to url (closed when the test ends) for confirmed
// publishes.
func confirmerAs(t *testing.T, url string) *router.Confirmer {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	out, err := router.NewConfirmer(conn)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// drainQueue takes the messages of a queue, waiting up to 10s for want.
func drainQueue(t *testing.T, queue string, want int) []amqp.Delivery {
	t.Helper()
	ch, err := brokertest.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	var got []amqp.Delivery
	wait.For(10*time.Second, func() bool {
		for {
			d, ok, err := ch.Get(queue, true)
			if err != nil || !ok {
				break
			}
			got = append(got, d)
		}
		return len(got) >= want
	})
	return got
}

// readTaskAs reads a Task with an API key.
func readTaskAs(t *testing.T, location, key string) taskView {
	t.Helper()
	r := gatewaytest.Do(t, http.MethodGet, location, nil, http.Header{"X-Api-Key": {key}})
	var v taskView
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("Task: %d %s", r.Status, r.Body)
	}
	return v
}

// A partner's user, with the permissions `fhirgw partner-user` prints, can
// publish to the ingress and read its own queues, and nothing else.
func TestPartnerUserMayDoNothingElse(t *testing.T) {
	s := gatewaytest.Start(t, amqpConfig(t))
	placer := s.Partner(t, "st-marys")
	s.Partner(t, "lab-partner") // creates the lab's user, so its queues exist for the attempts below
	attempts := []struct {
		name string
		do   func(ch *amqp.Channel) error
	}{
		{"publish to the route exchange", func(ch *amqp.Channel) error {
			if err := ch.Confirm(false); err != nil {
				return err
			}
			dc, err := ch.PublishWithDeferredConfirm(s.Topology.RouteExchange(), "filler.lab", false, false, amqp.Publishing{Body: []byte("{}")})
			if err != nil {
				return err
			}
			if !dc.Wait() {
				return errors.New("nacked")
			}
			return nil
		}},
		{"consume a filler's queue it is not", func(ch *amqp.Channel) error {
			_, err := ch.Consume(s.Topology.FillerQueue("lab"), "", false, false, false, false, nil)
			return err
		}},
		{"consume another partner's replies", func(ch *amqp.Channel) error {
			_, err := ch.Consume(s.Topology.ReplyQueue("lab-partner"), "", false, false, false, false, nil)
			return err
		}},
		{"declare a queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("partner-made", false, true, false, false, nil)
			return err
		}},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			conn, err := amqp.Dial(placer.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			err = a.do(ch)
			var refused *amqp.Error
			if !(errors.As(err, &refused) && refused.Code == amqp.AccessRefused) && !ch.IsClosed() {
				t.Fatalf("the broker allowed it: %v", err)
			}
		})
	}
	if got := s.Drain(t, "lab", 0, 500*time.Millisecond); len(got) != 0 {
		t.Errorf("%d messages reached the lab", len(got))
	}
}
