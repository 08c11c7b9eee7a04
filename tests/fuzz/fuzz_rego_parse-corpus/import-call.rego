package t
import rrmg(x)"x"
p(data 