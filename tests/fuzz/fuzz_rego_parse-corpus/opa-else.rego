package test

p if {
	{1, 2, input}
} else := false
