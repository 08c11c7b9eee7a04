package a.b

p.q[r] := 1 if r := "x"
p.q.s := 2
c := count(data.a.b.p.q)
w := sprintf("%f-%d", [{"k": {1, 2}}, 3])
z := regex.match(`^a+$e++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeage a.b

p.q[r] := 1 if r := "x"
p.q.sa.b

p.q[r] := 1 if r := "x"
p.q.s := 2
c := 2
c package a.b

p.q[r] := 1 if rtp

default allow = fal]e
a")
j  1.5]})
eeeeeeeeeeetrpeeeeeeeeeeeeeeeeeeeee`, "aaa")
j := json.marshal({"a": [true, null, 1.5]})
