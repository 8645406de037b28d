package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// encoding/json matches an object's keys to struct fields without regard to
// case ("play_dUration_ms" fills play_duration_ms), even with
// DisallowUnknownFields; the OpenAPI document, like JSON Schema, matches them
// exactly. decodeStrict decodes one JSON value into v (a pointer to a
// struct) with the document's rule: a key that is not exactly one of the
// struct's JSON names is an unknown field.
func decodeStrict(raw []byte, v any) error {
	if err := exactKeys(raw, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var jsonNamesCache sync.Map // reflect.Type -> map[string]bool

// exactKeys returns the error encoding/json gives an unknown field ("json:
// unknown field \"k\"", which decodeErr maps to unknown_field) for the first
// key, in byte order, of the object raw that is not exactly one of v's JSON
// names. A raw value that is not an object is left to the decode.
func exactKeys(raw []byte, v any) error {
	t := reflect.TypeOf(v).Elem()
	names, ok := jsonNamesCache.Load(t)
	if !ok {
		m := map[string]bool{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			m[name] = true
		}
		names, _ = jsonNamesCache.LoadOrStore(t, m)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	var bad []string
	for k := range obj {
		if !names.(map[string]bool)[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("json: unknown field %q", slices.Min(bad))
}

// decodeNext decodes dec's next value into v with decodeStrict's rule.
func decodeNext(dec *json.Decoder, v any) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	return decodeStrict(raw, v)
}
