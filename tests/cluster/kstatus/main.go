// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library behind
// Flux's `wait: true` and `healthChecks`) concludes about objects: it reads a stream of JSON or YAML
// objects on standard input (a List's items count one by one) and prints one JSON array with
// `{"status", "message"}` per object, in input order. An object kstatus cannot judge fails the run.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	decoder := yaml.NewYAMLOrJSONDecoder(in, 4096)
	results := []result{}
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("reading objects: %w", err)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// Decoded as the API machinery decodes objects: integers stay integers.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("reading an object: %w", err)
		}
		objects := []unstructured.Unstructured{*u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return fmt.Errorf("reading a %s: %w", u.GetKind(), err)
			}
			objects = list.Items
		}
		for i := range objects {
			res, err := status.Compute(&objects[i])
			if err != nil {
				return fmt.Errorf("%s %s: %w", objects[i].GetKind(), objects[i].GetName(), err)
			}
			results = append(results, result{Status: res.Status.String(), Message: res.Message})
		}
	}
	return json.NewEncoder(out).Encode(results)
}
