// Package config embeds the generated CRDs and the samples, so `cardplane dev` needs no checkout.
// The YAML files here stay the source of truth for kustomize and the Helm chart.
package config

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

//go:embed crd/bases/*.yaml samples/*.yaml samples/callbacks/*.json samples/rules/*.yaml samples/cardeventsinks/*.yaml
var files embed.FS

// CRDs returns the generated CustomResourceDefinitions (config/crd/bases).
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	names, err := fs.Glob(files, "crd/bases/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, crd)
	}
	return out, nil
}

// Sample is one object from config/samples.
type Sample struct {
	File   string
	Object *unstructured.Unstructured
}

// Samples returns every object of config/samples, in file order. Objects keep their status, which
// the API server ignores on create; apply it through the status subresource.
func Samples() ([]Sample, error) {
	names, err := fs.Glob(files, "samples/*.yaml")
	if err != nil {
		return nil, err
	}
	rules, err := fs.Glob(files, "samples/rules/*.yaml")
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		if !strings.HasSuffix(r, "-cases.yaml") { // test cases for `cardplane rules test`, not objects
			names = append(names, r)
		}
	}
	sinks, err := fs.Glob(files, "samples/cardeventsinks/*.yaml")
	if err != nil {
		return nil, err
	}
	names = append(names, sinks...)
	sort.Strings(names)
	var out []Sample
	for _, name := range names {
		if path.Base(name) == "kustomization.yaml" {
			continue
		}
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if len(u.Object) > 0 {
				out = append(out, Sample{File: path.Base(name), Object: u})
			}
		}
	}
	return out, nil
}

// Callbacks returns the example provider callbacks of config/samples/callbacks by name (file name without
// .json, e.g. "upay-card-status"): plaintext payloads for `cardplane simulate --example`.
func Callbacks() (map[string][]byte, error) {
	names, err := fs.Glob(files, "samples/callbacks/*.json")
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(path.Base(name), ".json")] = data
	}
	return out, nil
}
