package generated

p if {
	data.ex.data_eq with input as {}
}
