// Package v1alpha1 contains the cardplane API: Card, CardTransaction and WebhookEndpoint
// in group cards.cardplane.io.
// +kubebuilder:object:generate=true
// +groupName=cards.cardplane.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "cards.cardplane.io", Version: "v1alpha1"}

	// SchemeBuilder adds the cardplane types to a scheme (apimachinery's builder: an API package should
	// depend on nothing heavier).
	SchemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, knownTypes...)
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// knownTypes are the kinds of this group-version; each types file adds its own.
var knownTypes []runtime.Object
