# The two commands of the README. Everything else is in scripts/.
.PHONY: run test

run:
	scripts/run

test:
	scripts/test
