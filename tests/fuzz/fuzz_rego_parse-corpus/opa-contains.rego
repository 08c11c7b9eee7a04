package generated

p contains x if {
	[true, false, x] = data.c[i][j]
}
