package prepaidify

import (
	"strings"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/webhookserver/adapter"
	"github.com/cardplane/cardplane/webhookserver/event"
)

var auditStates = map[string]cardsv1alpha1.KYCState{
	"0": cardsv1alpha1.KYCPending,    // pending review
	"1": cardsv1alpha1.KYCPending,    // under review
	"2": cardsv1alpha1.KYCApproved,   // approved
	"3": cardsv1alpha1.KYCRejected,   // rejected
	"4": cardsv1alpha1.KYCUnverified, // data to be completed
}

// decodeAudit maps a physical cardholder audit result: a fact about the holder, who may have no card yet, so
// the event names the holder and no card. errMsg is kept verbatim as the KYC reason. The names, mobile number
// and identity document it carries are never read. An undocumented auditStatus is the state Unknown with the
// value verbatim, rather than a refusal (which would be retried and lost).
func decodeAudit(d map[string]any) (*adapter.Result, error) {
	const name = TypeCardholderAudit
	holder := adapter.Str(d, "holderId")
	if holder == "" {
		return nil, adapter.Malformed("%s: no holderId", name)
	}
	res := &adapter.Result{EventType: name, Ack: physicalAck}
	status := adapter.Str(d, "auditStatus")
	kyc := &event.KYC{State: auditStates[status], Reason: adapter.Str(d, "errMsg")}
	if kyc.State == "" {
		kyc.State, kyc.ProviderStatus = cardsv1alpha1.KYCUnknown, status
	}
	res.Events = []event.Event{{Type: name, ID: joinID(holder, status), HolderID: holder, KYC: kyc}}
	return res, nil
}

var kycStates = map[string]cardsv1alpha1.KYCState{
	"approved": cardsv1alpha1.KYCApproved, "rejected": cardsv1alpha1.KYCRejected,
	"reviewing": cardsv1alpha1.KYCPending, "init": cardsv1alpha1.KYCUnverified,
}

// decodeKYC maps a KYC sharing approval result. requestNo is the ID of the KYC request, not of a holder, so it
// is never used as one. When the payload names a holder (holderId, cardHolderId or userId, which the documented
// body lacks) the state goes to that holder. Otherwise a rejection is a failed request reported to the endpoint
// (Failure, with requestNo as its reference), and any other state has nothing it could be attached to: it is
// acknowledged and not stored. An undocumented kycStatus is acknowledged as an unknown event.
func decodeKYC(d map[string]any) (*adapter.Result, error) {
	const name = TypeKYCResult
	req := adapter.Str(d, "requestNo")
	if req == "" {
		return nil, adapter.Malformed("%s: no requestNo", name)
	}
	res := &adapter.Result{EventType: name, Ack: virtualAck}
	raw := adapter.Str(d, "kycStatus")
	status := strings.ToLower(raw)
	state, ok := kycStates[status]
	if !ok {
		res.Unknown = true
		return res, nil
	}
	ev := event.Event{Type: name, ID: joinID(req, status), HolderID: adapter.First(d, "holderId", "cardHolderId", "userId")}
	if state == cardsv1alpha1.KYCRejected {
		ev.Failure = &event.Failure{Kind: name, ProviderStatus: raw, Reference: req}
	}
	if ev.HolderID != "" {
		ev.KYC = &event.KYC{State: state}
	}
	if ev.KYC != nil || ev.Failure != nil {
		res.Events = []event.Event{ev}
	}
	return res, nil
}
