package test

p if {
  every.foo == 3
  foo.every == 6
}

every.foo := 1 if {
  input.x == 1
} else := 2 if {
  input.x == 2
} else := 3

foo.every := 4 if {
  input.x == 1
} else := 5 if {
  input.x == 2
} else := 6
