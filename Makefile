# The two commands of the README. Everything else is in scripts/.
.PHONY: run test bench

run:
	scripts/run

test:
	scripts/test

# Not part of `make test`: every engine figure beside a bare Celery task (see benchmarks/bench.py).
bench:
	scripts/setup dev
	.venv/bin/python benchmarks/bench.py
