// Package ruleyaml writes offer rules as the YAML marketers read and edit:
// members in the rule's own order rather than sorted, so that the file reads
// from id and tiers down to templates. The CLI and the console share it.
package ruleyaml

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"sigs.k8s.io/yaml"
)

// Ordered writes a JSON object as YAML with its members in the JSON's
// order (the rule's own: id, name, performer, show, tiers…), leaving out skip.
func Ordered(obj json.RawMessage, skip ...string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("writing YAML: not a JSON object")
	}
	var out bytes.Buffer
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("writing YAML: %w", err)
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("writing YAML: %w", err)
		}
		if slices.Contains(skip, key) {
			continue
		}
		// One member at a time keeps the order: YAML writes a map's keys sorted.
		member, err := json.Marshal(map[string]json.RawMessage{key: value})
		if err != nil {
			return nil, fmt.Errorf("writing YAML: %w", err)
		}
		y, err := yaml.JSONToYAML(member)
		if err != nil {
			return nil, fmt.Errorf("writing YAML: %w", err)
		}
		out.Write(y)
	}
	return out.Bytes(), nil
}
