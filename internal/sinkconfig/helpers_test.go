package sinkconfig

import (
	"context"
	"fmt"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/scheme"
	"github.com/cardplane/cardplane/internal/testenv"
)

// ns is the sink's namespace in every test.
const ns = "team-a"

// secret is a Secret of ns labelled for cardplane.
func secret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{cardsv1alpha1.LabelCredentials: "true"}}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func newReader(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(objs...).Build()
}

// loopback lets the tests' sinks reach their in-process servers; the default policy refuses loopback.
var loopback = testenv.LoopbackOnly

// refuseAll keeps sinks that connect in the background (NATS) from reaching anything.
func refuseAll(_, address string, _ syscall.RawConn) error {
	return fmt.Errorf("%s refused by the test", address)
}

// builderFor is a builder over objs, for the tests of the configuration each transport gets.
func builderFor(o Options, objs ...client.Object) *builder {
	return &builder{secrets: newSecrets(context.Background(), newReader(objs...), ns), o: o}
}
