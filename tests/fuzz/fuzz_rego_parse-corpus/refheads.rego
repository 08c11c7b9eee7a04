package a.b

p.q[r] := 1 if r := "x"
p.q.s := 2
c := count(data.a.b.p.q)
w := sprintf("%v-%d", [{"k": {1, 2}}, 3])
z := regex.match(`^a+$`, "aaa")
j := json.marshal({"a": [true, null, 1.5]})
