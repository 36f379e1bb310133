package sinkconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cardsv1alpha1 "github.com/cardplane/cardplane/api/v1alpha1"
	"github.com/cardplane/cardplane/internal/endpointconfig"
	"github.com/cardplane/cardplane/internal/sink"
)

// fetch reads a Secret the way every Secret cardplane uses is read (endpointconfig.SecretData: labelled
// ones only). A missing or unlabelled Secret is a *ConfigError with its reason; other errors are failed reads.
func fetch(ctx context.Context, r client.Reader, namespace, name string) (map[string][]byte, error) {
	data, err := endpointconfig.SecretData(ctx, r, namespace, name)
	if e := (*endpointconfig.Error)(nil); errors.As(err, &e) {
		return nil, &ConfigError{Reason: e.Reason, Err: errors.New(e.Message)}
	}
	return data, err
}

// secrets reads the Secrets of one namespace for one Build, each once however often it is named.
type secrets struct {
	ctx  context.Context
	r    client.Reader
	ns   string
	read map[string]map[string][]byte
}

func newSecrets(ctx context.Context, r client.Reader, namespace string) *secrets {
	return &secrets{ctx: ctx, r: r, ns: namespace, read: map[string]map[string][]byte{}}
}

// data is a usable Secret's data.
func (s *secrets) data(name string) (map[string][]byte, error) {
	if d, ok := s.read[name]; ok {
		return d, nil
	}
	data, err := fetch(s.ctx, s.r, s.ns, name)
	if err != nil {
		return nil, err
	}
	s.read[name] = data
	return data, nil
}

// value is one key of a Secret, which must be there and not empty.
func (s *secrets) value(name, key string) ([]byte, error) {
	d, err := s.data(name)
	if err != nil {
		return nil, err
	}
	v, ok := d[key]
	switch {
	case !ok:
		return nil, s.missing(name, key)
	case len(v) == 0:
		return nil, configErr(cardsv1alpha1.ReasonSecretKeyMissing, "Secret %s/%s: key %q is empty", s.ns, name, key)
	}
	return v, nil
}

func (s *secrets) missing(name, key string) error {
	return configErr(cardsv1alpha1.ReasonSecretKeyMissing, "Secret %s/%s: no key %q", s.ns, name, key)
}

// text is a key as a string without the trailing newline a Secret made with echo carries; nothing else is
// trimmed, since a credential may end in a space.
func (s *secrets) text(name, key string) (string, error) {
	v, err := s.value(name, key)
	if err != nil {
		return "", err
	}
	return trimNewline(v), nil
}

func trimNewline(v []byte) string {
	t, ok := strings.CutSuffix(string(v), "\n")
	if ok {
		t = strings.TrimSuffix(t, "\r")
	}
	return t
}

// tls is the TLS configuration t names, checked here so that a bad certificate is reported with the Secret
// it came from. A nil t is the default: roots only.
func (s *secrets) tls(t *cardsv1alpha1.SinkTLS, roots *x509.CertPool) (sink.TLS, error) {
	out := sink.TLS{RootCAs: roots}
	if t == nil {
		return out, nil
	}
	out.ServerName = t.ServerName
	if ref := t.CASecretRef; ref != nil {
		ca, err := s.value(ref.Name, ref.Key)
		if err != nil {
			return sink.TLS{}, err
		}
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			return sink.TLS{}, configErr(ReasonInvalidTLS, "caSecretRef %s/%s key %s: no PEM certificate", s.ns, ref.Name, ref.Key)
		}
		out.CA = ca
	}
	if ref := t.ClientCertificateSecretRef; ref != nil {
		cert, err := s.value(ref.Name, corev1.TLSCertKey)
		if err != nil {
			return sink.TLS{}, err
		}
		key, err := s.value(ref.Name, corev1.TLSPrivateKeyKey)
		if err != nil {
			return sink.TLS{}, err
		}
		// The error of a pair that does not parse names what is wrong, never the key's bytes.
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			return sink.TLS{}, configErr(ReasonInvalidTLS, "clientCertificateSecretRef %s/%s: %w", s.ns, ref.Name, err)
		}
		out.Cert, out.Key = cert, key
	}
	return out, nil
}
