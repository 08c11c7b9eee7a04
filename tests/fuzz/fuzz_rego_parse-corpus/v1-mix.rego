package t
import rego.v1

xs := [1, 2, 3]
p contains x if some x in xs; x > 1
q[k] := v if { some k, v in {"a": 1} }
f(x) := y if { y := x * 2 } else := 0
r if every x in xs { x > 0 }
s := {x | x := xs[_]} | {9}
t := [y | y := input.a[_]] with input as {"a": [1]}
default u := false
u if not p[4]
