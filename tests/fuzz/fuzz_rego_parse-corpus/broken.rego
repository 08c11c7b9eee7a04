package
import
"unterminated
