// Renders the webhook sink's template table with Go's own text/template, as kube-eventer
// does (quotes removed from .Message; .LastTimestamp falling back to .EventTime), and
// prints each case's body or error as JSON, for check.sh to compare with the table.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"text/template"
	"time"

	v1 "oracle/v1"
)

type testCase struct {
	Name     string          `json:"name"`
	Template string          `json:"template"`
	Event    json.RawMessage `json:"event"`
}

type result struct {
	Name  string  `json:"name"`
	Body  *string `json:"body,omitempty"`
	Error *string `json:"error,omitempty"`
}

func main() {
	var table struct {
		Events map[string]json.RawMessage `json:"events"`
		Cases  []struct {
			Name     string `json:"name"`
			Template string `json:"template"`
			Event    string `json:"event"`
			TZ       string `json:"tz"`
		} `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&table); err != nil {
		panic(err)
	}
	var out []result
	for _, c := range table.Cases {
		r := result{Name: c.Name}
		// metav1 decodes times into time.Local: the process's TZ.
		time.Local = time.UTC
		if c.TZ != "" {
			loc, err := time.LoadLocation(c.TZ)
			if err != nil {
				panic(err)
			}
			time.Local = loc
		}
		var event v1.Event
		if err := json.Unmarshal(table.Events[c.Event], &event); err != nil {
			panic(c.Name + ": " + err.Error())
		}
		event.Message = strings.Replace(event.Message, `"`, ``, -1)
		if event.LastTimestamp.IsZero() {
			event.LastTimestamp = v1.Time{Time: event.EventTime.Time}
		}
		var buf bytes.Buffer
		tp, err := template.New("body").Parse(c.Template)
		if err == nil {
			err = tp.Execute(&buf, &event)
		}
		if err != nil {
			msg := err.Error()
			r.Error = &msg
		} else {
			body := buf.String()
			r.Body = &body
		}
		out = append(out, r)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
