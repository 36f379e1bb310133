package v1alpha1

// SecretNames lists the Secrets the options name (headers, bearer token, CA, client certificate), in the
// referrer's namespace, so a change of one of them can be mapped to what uses it.
func (h *HTTPSinkOptions) SecretNames() []string {
	if h == nil {
		return nil
	}
	var names []string
	for _, hd := range h.Headers {
		names = append(names, hd.ValueFrom.Name)
	}
	if h.BearerTokenSecretRef != nil {
		names = append(names, h.BearerTokenSecretRef.Name)
	}
	return append(names, h.TLS.SecretNames()...)
}

// SecretNames lists the Secrets the TLS options name (CA bundle, client certificate).
func (t *SinkTLS) SecretNames() []string {
	if t == nil {
		return nil
	}
	var names []string
	if t.CASecretRef != nil {
		names = append(names, t.CASecretRef.Name)
	}
	if t.ClientCertificateSecretRef != nil {
		names = append(names, t.ClientCertificateSecretRef.Name)
	}
	return names
}
