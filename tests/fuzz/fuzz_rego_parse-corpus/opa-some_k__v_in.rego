package test

p[k] := v if {
	some k, v in {"foo": 100, "what": "ever"}
}
