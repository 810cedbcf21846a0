package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConvert(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		output string
		asked  []string
	}{
		{
			name:   "version only",
			input:  "pas_config_version: 4.8.0\n",
			output: "pas_config_version: 4.9.0\n",
		},
		{
			name:   "comments and CRLF kept",
			input:  "# exported\r\npas_config_version: 4.8.0\r\nkey: value  # note\r\n",
			output: "# exported\r\npas_config_version: 4.9.0\r\nkey: value  # note\r\n",
		},
		{
			name: "nested legacy block",
			input: "pas_config_version: 4.8.0\nservices:\n  - name: a\n    legacy_tls:\n      cipher: rc4\n" +
				"    port: 1\n",
			output: "pas_config_version: 4.9.0\nservices:\n  - name: a\n    port: 1\n",
			asked:  []string{"legacy_tls"},
		},
		{
			name:   "sequence at key indentation",
			input:  "pas_config_version: 4.8.0\nlegacy_hosts:\n- a\n- b\n\nnext: 1\n",
			output: "pas_config_version: 4.9.0\n\nnext: 1\n",
			asked:  []string{"legacy_hosts"},
		},
		{
			name: "block scalar text is not a key",
			input: "pas_config_version: 4.8.0\nnotes: |\n  legacy_mode: on\n\n  more\nlegacy_x: >-\n" +
				"  legacy_y: folded\nnext: 1\n",
			output: "pas_config_version: 4.9.0\nnotes: |\n  legacy_mode: on\n\n  more\nnext: 1\n",
			asked:  []string{"legacy_x"},
		},
		{
			name:   "block scalar item text is not a key",
			input:  "pas_config_version: 4.8.0\nrules:\n  - |\n    legacy_rule: x\n  - name: b\n",
			output: "pas_config_version: 4.9.0\nrules:\n  - |\n    legacy_rule: x\n  - name: b\n",
		},
		{
			name: "legacy key first in a sequence item",
			input: "pas_config_version: 4.8.0\nservices:\n  - legacy_name: a\n    port: 1\n" +
				"  - legacy_only:\n      x: 1\n  - name: c\n",
			output: "pas_config_version: 4.9.0\nservices:\n  - port: 1\n  - {}\n  - name: c\n",
			asked:  []string{"legacy_name", "legacy_only"},
		},
		{
			name:   "two legacy keys",
			input:  "pas_config_version: 4.8.0\nlegacy_a: 1\nb: 2\nlegacy_c: {x: 1}\n",
			output: "pas_config_version: 4.9.0\nb: 2\n",
			asked:  []string{"legacy_a", "legacy_c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			out, err := convert(tt.input, "in.yaml", func(item string) error {
				asked = append(asked, item)
				return nil
			})

			require.NoError(t, err)
			assert.Equal(t, tt.output, out)
			assert.Equal(t, tt.asked, asked)
		})
	}
}

func TestConvertRejectsInput(t *testing.T) {
	tests := []struct {
		name, input, message string
	}{
		{"already converted", "pas_config_version: 4.9.0\n", "has pas_config_version 4.9.0"},
		{"other first key", "services: []\npas_config_version: 4.8.0\n", "does not start with pas_config_version"},
		{"empty", "", "has no pas_config_version line"},
		{"indented version", "  pas_config_version: 4.8.0\n", "does not start with pas_config_version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := convert(tt.input, "in.yaml", func(string) error {
				t.Fatal("no question expected")
				return nil
			})

			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.message)
			assert.Contains(t, err.Error(), "in.yaml")
		})
	}
}
